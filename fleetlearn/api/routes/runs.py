"""Runs: start (checked first, trained in its own process), list, follow, rank, cancel, resume.

Routes (all under ``/v1``)::

    POST /runs                     check a run, then start it in its own process (train)
    GET  /runs                     recent runs (read)
    GET  /runs/{id}                one run: status, progress (units and trials), failures
    GET  /runs/{id}/leaderboard    its leaderboard, as rows (read)
    POST /runs/{id}/cancel         stop it: marked interrupted, resumable (train)
    POST /runs/{id}/resume         train what an interrupted or failed run is missing (train)

Processes are the :class:`~fleetlearn.training.Launcher`'s; their state is in the
registry, so every API process sharing it answers the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query

from fleetlearn.api._uploads import resolve_dataset
from fleetlearn.api.deps import LauncherDep, ReadKey, StateDep, TrainKey
from fleetlearn.api.errors import ErrorBody, HttpError
from fleetlearn.api.schemas import (
    DatasetRef,
    LeaderboardPublic,
    RunCreate,
    RunPublic,
    RunsPublic,
    RunStarted,
)
from fleetlearn.errors import ConfigError, NotFoundError
from fleetlearn.registry import Registry, Run
from fleetlearn.training import (
    CANCEL_GRACE_S,
    DatasetConfig,
    Launcher,
    RunConfig,
    plan_run_units,
    prepare,
    run_leaderboard,
    run_units,
)

__all__ = ["router", "train_router", "run_config_from", "run_progress"]

log = logging.getLogger("fleetlearn.serving")

router = APIRouter(prefix="/v1", tags=["runs"])
#: Starting, cancelling and resuming runs: API servers only, never Ray Serve replicas.
train_router = APIRouter(prefix="/v1", tags=["runs"])


# ----------------------------------------------------------------- checks


def _target_of(ref: str, path: Path, entry: DatasetRef | None, target: Any) -> str:
    if entry is not None and entry.target:
        return entry.target
    if isinstance(target, str) and target:
        return target
    if isinstance(target, dict):
        for key in (ref, path.name, path.stem, str(path), entry.name if entry else None, "*"):
            if key is not None and key in target:
                return target[key]
    raise ConfigError(f"No target column for dataset '{ref}': give \"target\": COLUMN for "
                      f"every table, or {{\"{ref}\": COLUMN}}.")


def run_config_from(body: RunCreate, data: Path) -> RunConfig:
    """The :class:`~fleetlearn.training.RunConfig` of a request (ConfigError when bad)."""
    entries = []
    for item in body.datasets:
        entry = item if isinstance(item, DatasetRef) else None
        ref = entry.dataset if entry else str(item)
        path = resolve_dataset(ref, data)
        entries.append(DatasetConfig(
            path=str(path), target=_target_of(ref, path, entry, body.target),
            task=(entry.task if entry and entry.task else body.task),
            name=entry.name if entry else None,
            models=entry.models if entry else None))
    try:
        return RunConfig(datasets=entries, models=body.models, folds=body.folds,
                         test_size=body.test_size, metric=body.metric, seed=body.seed,
                         schedule=body.schedule, curves=body.curves, name=body.name)
    except TypeError as exc:  # a value of the wrong kind that RunConfig compares
        raise ConfigError(f"Invalid run options: {exc}.") from exc


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_progress(registry: Registry, run: Run) -> dict[str, Any]:
    """Units and trials done of a run, per dataset, with its failed units.

    The total is planned the way training plans it (``plan_units``): per trial, the CV
    folds, the final fit, and a learning-curve unit when curves are on and the model has
    no per-iteration metric.
    """
    config = run.config or {}
    names = {d.id: d.name for d in registry.run_datasets(run.id)}
    trials = registry.list_trials(run.id)
    models: dict[str, list[tuple[str, Any]]] = {}
    for t in trials:
        dname = names.get(t.dataset_id, str(t.dataset_id))
        models.setdefault(dname, []).append((t.model_name, (t.spec or {}).get("iterative")))
    planned = plan_run_units(models, int(config.get("folds") or 0),
                             bool(config.get("final_fit", True)),
                             bool(config.get("curves", True)))
    per_trial: dict[tuple[str, str], int] = {}
    for u in planned:
        per_trial[(u.dataset, u.model)] = per_trial.get((u.dataset, u.model), 0) + 1
    datasets = {d: {"units_done": 0, "units_total": 0} for d in models}
    for u in planned:
        datasets[u.dataset]["units_total"] += 1
    failures = []
    units_done = trials_done = 0
    for t in trials:
        dname = names.get(t.dataset_id, str(t.dataset_id))
        done = len(t.units)
        units_done += done
        datasets[dname]["units_done"] += done
        trials_done += done >= per_trial.get((dname, t.model_name), 0)
        for unit_name, u in sorted(t.units.items()):
            if u.status != "ok":
                first = ((u.error or "unknown error").splitlines() or [""])[0]
                failures.append({"dataset": dname, "model": t.model_name, "unit": unit_name,
                                 "error": first[:500]})
    total = len(planned)
    return {"units_done": units_done, "units_total": total, "trials_done": trials_done,
            "trials_total": len(trials), "fraction": round(units_done / total, 4) if total else 0.0,
            "datasets": datasets, "failures": failures}




def _process_public(proc: dict[str, Any] | None) -> dict[str, Any] | None:
    if proc is None:
        return None
    return {k: proc.get(k) for k in ("pid", "running", "exit_code", "log", "host",
                                     "started_at")}


def _run_public(registry: Registry, launcher: Launcher, run_id: str) -> dict[str, Any]:
    try:
        run = launcher.check(registry.get_run(run_id))
    except NotFoundError:
        child = launcher.child(run_id)
        if child is None:
            raise
        proc = launcher.process(run_id)
        assert proc is not None
        # Not recorded yet: the process is still checking its data and joining Ray, or it
        # stopped before it could record the run.
        if proc["running"]:
            status, error = "starting", None
        elif proc["cancelled"]:
            status, error = "cancelled", "cancelled through the API before the run started"
        else:
            status = "failed"
            error = proc["error"] or f"the training process exited with code {proc['exit_code']}"
        return {"id": run_id, "name": None, "status": status, "error": error,
                "process": _process_public(proc)}
    datasets = [{"name": d.name, "rows": d.n_rows, "features": d.n_features, "task": d.task,
                 "target": d.target} for d in registry.run_datasets(run.id)]
    return {"id": run.id, "name": run.name, "status": run.status, "error": run.error,
            "seed": run.seed, "created_at": _iso(run.created_at),
            "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
            "datasets": datasets, "progress": run_progress(registry, run),
            "config": run.config, "process": _process_public(launcher.process(run.id, run))}


# ----------------------------------------------------------------- routes


@train_router.post(
    "/runs", response_model=RunStarted, status_code=202,
    summary="Start a training run (checked first; trains in its own process)",
    description="Every option is checked before anything is written: the tables are read, "
    "targets, models and the metric resolved. Bad input is a 422 naming the problem. Then "
    "the run starts in a separate `fleetlearn train` process and this answers at once with "
    "its id; follow it with GET /v1/runs/{id}.",
    operation_id="startRun",
)
async def start_run(state: StateDep, launcher: LauncherDep, _: TrainKey,
                    body: RunCreate) -> dict[str, Any]:
    config = await asyncio.to_thread(run_config_from, body, state.settings.data_path)
    prepared = await asyncio.to_thread(prepare, config)
    total = len(run_units(prepared, config))
    warnings = [w for p in prepared for w in p.dataset.warnings] + [
        n for p in prepared for n in p.notes]
    child = await asyncio.to_thread(launcher.start, config)
    log.info("run %s started (pid %d, %d units)", child.run_id, child.proc.pid, total)
    return {"id": child.run_id, "status": "starting", "units_total": total,
            "warnings": warnings, "log": str(child.log)}


@router.get("/runs", response_model=RunsPublic, summary="Recent runs, newest first",
            operation_id="listRuns")
def list_runs(
    state: StateDep, launcher: LauncherDep, _: ReadKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: Annotated[str | None, Query(
        pattern="^(starting|running|finished|failed|interrupted)$")] = None,
) -> dict[str, Any]:
    runs = [launcher.check(r) for r in state.registry.list_runs(limit=limit)]
    known = {r.id for r in runs}
    rows: list[dict[str, Any]] = [
        {"id": rid, "name": None, "status": "starting", "created_at": None,
         "finished_at": None, "error": None, "datasets": []}
        for rid in launcher.starting() if rid not in known]
    for r in runs:
        rows.append({"id": r.id, "name": r.name, "status": r.status,
                     "created_at": _iso(r.created_at), "finished_at": _iso(r.finished_at),
                     "error": r.error,
                     "datasets": [d.name for d in state.registry.run_datasets(r.id)]})
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    rows = rows[:limit]
    return {"data": rows, "count": len(rows)}


@router.get("/runs/{run_id}", response_model=RunPublic,
            summary="A run: status, progress (units and trials done), failures",
            operation_id="getRun")
def get_run(state: StateDep, launcher: LauncherDep, _: ReadKey, run_id: str) -> dict[str, Any]:
    return _run_public(state.registry, launcher, run_id)


@router.get("/runs/{run_id}/leaderboard", response_model=LeaderboardPublic,
            summary="A run's leaderboard (partial while it runs)",
            operation_id="getRunLeaderboard")
def run_leaderboard_route(
    state: StateDep, _: ReadKey, run_id: str,
    metric: Annotated[str | None, Query(description="Rank by this metric instead of the "
                                        "run's primary one")] = None,
) -> dict[str, Any]:
    run = state.registry.get_run(run_id)
    board = run_leaderboard(state.registry, run.id, metric=metric)
    # pandas writes NaN, NA and inf as null, and numpy scalars as plain numbers.
    rows = json.loads(board.to_json(orient="records")) if not board.empty else []
    return {"run_id": run.id, "status": run.status, "rows": rows}


@train_router.post("/runs/{run_id}/cancel", response_model=RunPublic,
             summary="Stop a run started through the API (marked interrupted, resumable)",
             description="Sends the training process Ctrl-C (it records what finished and "
             f"marks the run interrupted), and after {CANCEL_GRACE_S:g} s terminates its "
             "process group. Answers once it has stopped. Any server on the run's host can "
             "cancel it. Resume with POST /v1/runs/{id}/resume.",
             operation_id="cancelRun",
             responses={409: {"model": ErrorBody, "description": "Nothing to cancel, or the "
                              "process runs on another host."}})
async def cancel_run(state: StateDep, launcher: LauncherDep, _: TrainKey,
                     run_id: str) -> dict[str, Any]:
    try:
        run_id = (await asyncio.to_thread(state.registry.get_run, run_id)).id
    except NotFoundError:
        if launcher.child(run_id) is None:
            raise
    stopped = await asyncio.to_thread(launcher.cancel, run_id)
    if not stopped:
        current = await asyncio.to_thread(_run_public, state.registry, launcher, run_id)
        if current["status"] == "running":
            raise HttpError(409, f"Run {run_id} is running, but not in a process an API "
                            "server started (it was started from a command line): stop it "
                            "there with Ctrl-C.", "Conflict")
        raise HttpError(409, f"Run {run_id} is {current['status']}: nothing to cancel.",
                        "Conflict")
    return await asyncio.to_thread(_run_public, state.registry, launcher, run_id)


@train_router.post("/runs/{run_id}/resume", response_model=RunPublic, status_code=202,
             summary="Resume an interrupted or failed run in a new process",
             description="Trains only the units missing from the run's journal, with its "
             "stored configuration, as `fleetlearn train --resume ID` does.",
             operation_id="resumeRun",
             responses={409: {"model": ErrorBody, "description": "The run is running or "
                              "finished: nothing to resume."}})
async def resume_run(state: StateDep, launcher: LauncherDep, _: TrainKey,
                     run_id: str) -> dict[str, Any]:
    run = await asyncio.to_thread(state.registry.get_run, run_id)
    child = await asyncio.to_thread(launcher.resume, run.id)  # ConflictError: 409
    log.info("run %s resumed (pid %d)", child.run_id, child.proc.pid)
    return await asyncio.to_thread(_run_public, state.registry, launcher, run.id)
