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
import logging
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query

# ``training.prepare``/``run_units`` are looked up on use (the package loads them lazily):
# importing them here would load Ray into every API process, whose warning filters
# scikit-learn's parallel helper then re-applies on every tree of every prediction.
from fleetlearn import insights, training
from fleetlearn.api._uploads import resolve_dataset
from fleetlearn.api.deps import LauncherDep, ReadKey, StateDep, TrainKey
from fleetlearn.api.errors import ErrorBody, HttpError
from fleetlearn.api.schemas import LeaderboardPublic, RunPublic, RunsPublic, RunStarted
from fleetlearn.errors import NotFoundError
from fleetlearn.registry import Registry
from fleetlearn.training import (
    CANCEL_GRACE_S,
    Launcher,
    RunOptions,
    RunRequest,
)

__all__ = ["router", "run_options_from", "train_router"]

log = logging.getLogger("fleetlearn.serving")

router = APIRouter(prefix="/v1", tags=["runs"])
#: Starting, cancelling and resuming runs: API servers only, never Ray Serve replicas.
train_router = APIRouter(prefix="/v1", tags=["runs"])


# ----------------------------------------------------------------- answers


def run_options_from(body: RunRequest, data: Path) -> RunOptions:
    """The :class:`~fleetlearn.training.RunOptions` of a request, each dataset reference
    resolved inside the data folder (``ConfigError``/``DataFileNotFoundError`` when bad)."""
    return body.to_options(partial(resolve_dataset, data=data))


def _prepare(config: RunOptions, packages: list[str]) -> list[Any]:
    """``training.prepare`` with dotted model paths only under ``packages``: checked
    before anything is imported (the launched process resolves the same models)."""
    from fleetlearn.catalog import allowed_model_packages

    with allowed_model_packages(packages):
        return training.prepare(config)


def _process_public(proc: dict[str, Any] | None) -> dict[str, Any] | None:
    if proc is None:
        return None
    return {k: proc.get(k) for k in ("pid", "running", "exit_code", "log", "host",
                                     "started_at")}


def _run_public(registry: Registry, launcher: Launcher, run_id: str) -> dict[str, Any]:
    try:
        run = launcher.check(registry.get_run(run_id))
    except NotFoundError as missing:
        # Not recorded yet: the process (this server's or another's, from the registry's
        # launches) is still checking its data and joining Ray, or it stopped before it
        # could record the run.
        pending = launcher.pending(run_id)
        if pending is not None:
            return {"id": run_id, "name": None, "status": pending["status"],
                    "error": pending["error"], "process": _process_public(pending["process"])}
        if registry.get_launch(run_id) is None:
            raise missing from None
        run = launcher.check(registry.get_run(run_id))  # recorded while we looked
    # launcher.check may have just marked a dead driver's run interrupted: the read
    # model reads the registry again, so it answers that status.
    answer = insights.run_detail(registry, run.id).to_dict()
    answer["process"] = _process_public(launcher.process(run.id, run))
    return answer


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
                    body: RunRequest) -> dict[str, Any]:
    config = await asyncio.to_thread(run_options_from, body, state.settings.data_path)
    prepared = await asyncio.to_thread(_prepare, config, state.settings.model_packages)
    total = len(training.run_units(prepared, config))
    warnings = [w for p in prepared for w in p.dataset.warnings] + [
        n for p in prepared for n in p.notes]
    # The run's process records the run: when the registry is down now, say so (503)
    # instead of answering 202 for a process that cannot start.
    await asyncio.to_thread(state.registry.ping)
    child = await asyncio.to_thread(launcher.start, config)
    log.info("run %s started (pid %d, %d units)", child.run_id, child.proc.pid, total)
    return {"id": child.run_id, "status": "starting", "units_total": total,
            "warnings": warnings, "log": str(child.log)}


@router.get("/runs", response_model=RunsPublic, summary="Recent runs, newest first",
            operation_id="listRuns")
def list_runs(
    state: StateDep, launcher: LauncherDep, _: ReadKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, description="Skip this many of the newest runs "
                                 "first (paging: the next page is offset + limit)")] = 0,
    status: Annotated[str | None, Query(
        pattern="^(starting|running|finished|failed|interrupted)$")] = None,
) -> dict[str, Any]:
    # check() first: a dead driver's run is marked interrupted before it is listed.
    for r in state.registry.list_runs(limit=limit, offset=offset):
        launcher.check(r)
    summaries = insights.run_summaries(state.registry, limit=limit, offset=offset)
    known = {r.id for r in summaries}
    # Runs still starting have no row yet: they are the newest, listed on the first page.
    rows: list[dict[str, Any]] = [
        {"id": rid, "name": None, "status": "starting", "created_at": None,
         "finished_at": None, "error": None, "datasets": []}
        for rid in (launcher.starting() if offset == 0 else ()) if rid not in known]
    rows += [r.to_dict() for r in summaries]
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
    return insights.run_board(state.registry, run_id, metric=metric).to_dict()


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
        if await asyncio.to_thread(launcher.pending, run_id) is None:
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
