"""The work one Ray task does: fit and score one fold, the final model, or a curve.

Everything here runs inside a Ray worker. It returns plain dicts (and the final
model as skops bytes) so the driver alone talks to the registry and the artifact
store: workers on other nodes need no access to either.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
import warnings
from typing import Any

import ray
from sklearn.pipeline import Pipeline
from threadpoolctl import ThreadpoolController

from fleetlearn.catalog import ModelSpec
from fleetlearn.evaluation import learning_curve_points, score_predictions, training_curve
from fleetlearn.model import build_pipeline
from fleetlearn.registry import dump_estimator

__all__ = ["run_unit", "run_unit_batch", "build_pipeline"]


_WHERE: dict[str, str] = {}
_CONTROLLER: list[ThreadpoolController] = []


def _thread_limit(n: int | None) -> Any:
    """Cap BLAS/OpenMP threads; the controller (a scan of loaded libraries) is built
    once per worker process, not once per unit."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=n)


def _where() -> dict[str, str]:
    """Which node and process ran the unit (computed once per worker process)."""
    if _WHERE:
        return dict(_WHERE)
    if ray.is_initialized():
        where = {"node": ray.get_runtime_context().get_node_id(),
                 "node_ip": ray.util.get_node_ip_address()}
    else:  # outside Ray (unit tests call run_unit directly): do not start Ray
        return {"node": "local", "node_ip": "127.0.0.1", "host": socket.gethostname(),
                "pid": str(os.getpid())}
    _WHERE.update(where, host=socket.gethostname(), pid=str(os.getpid()))
    return dict(_WHERE)


def _attempts() -> int:
    """How many times Ray has started this task, this attempt included (1 = first).

    Ray retries a task whose worker or node died (``max_retries``); the attempt number
    is in the task's own spec, so reading it costs no round trip. Ray 2.60 has no public
    accessor for it (the state API has it per attempt, but needs the dashboard), hence
    the core worker's; an older or newer Ray without it reads as one attempt.
    """
    if not ray.is_initialized():
        return 1
    try:
        core = ray._private.worker.global_worker.core_worker
        return int(core.get_current_task_attempt_number()) + 1
    except (AttributeError, TypeError):
        return 1


def run_unit(bundle: dict[str, Any], spec_dict: dict[str, Any], unit: str, seed: int,
             metric: str) -> dict[str, Any]:
    """Run one unit and return ``{status, payload, error, duration_s, artifact}``.

    A model that raises is reported as a failed unit, not as a failed Ray task: the
    error is the model's, retrying it would fail again, and the run goes on.
    """
    start = time.perf_counter()
    started_at = time.time()
    spec = ModelSpec.from_dict(spec_dict)
    caught: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as seen, _thread_limit(spec.n_jobs):
            warnings.simplefilter("always")
            payload, artifact = _run(bundle, spec, unit, seed, metric)
            caught = sorted({f"{w.category.__name__}: {w.message}" for w in seen})[:5]
    except Exception as exc:  # noqa: BLE001 - any model error becomes a failed unit
        tb = traceback.format_exc(limit=6)
        return {
            "status": "failed",
            "payload": {**_where(), "attempts": _attempts(), "traceback": tb,
                        "started_at": started_at, "finished_at": time.time()},
            "error": f"{type(exc).__name__}: {exc}".strip()[:2000],
            "duration_s": time.perf_counter() - start,
            "artifact": None,
        }
    payload.update(_where(), attempts=_attempts(), started_at=started_at,
                   finished_at=time.time())
    if caught:
        payload["warnings"] = caught
    return {
        "status": "ok",
        "payload": payload,
        "error": None,
        "duration_s": time.perf_counter() - start,
        "artifact": artifact,
    }


def run_unit_batch(bundle: dict[str, Any], items: list[tuple[dict[str, Any], str, int]],
                   metric: str) -> list[dict[str, Any]]:
    """Run several units of one dataset in one Ray task: ``[run_unit(...), ...]`` in order.

    ``items`` holds ``(spec_dict, unit, seed)`` per unit. The driver sends one unit per
    task unless a wave has many more units than the cluster has CPUs (thousands of tiny
    trials); then a few units share a task, which divides Ray's per-task cost (submit,
    schedule, argument and result transfer, the worker's task loop) among them.
    """
    results = [run_unit(bundle, spec_dict, unit, seed, metric)
               for spec_dict, unit, seed in items]
    if ray.is_initialized():  # which task ran the unit: units that shared one share it
        task = ray.get_runtime_context().get_task_id()
        for result in results:
            result["payload"]["task"] = task
    return results


def _predict_time(pipeline: Pipeline, X: Any) -> float:
    start = time.perf_counter()
    pipeline.predict(X)
    return (time.perf_counter() - start) / max(len(X), 1)


def _run(bundle: dict[str, Any], spec: ModelSpec, unit: str, seed: int,
         metric: str) -> tuple[dict[str, Any], bytes | None]:
    X, y, splits, schema = bundle["X"], bundle["y"], bundle["splits"], bundle["schema"]
    task = schema.task
    if unit.startswith("cv"):
        tr, va = splits.folds[int(unit[2:])]
        pipe = build_pipeline(spec, schema, seed)
        t0 = time.perf_counter()
        pipe.fit(X.iloc[tr], y[tr])
        fit_time = time.perf_counter() - t0
        scores, per_row = score_predictions(pipe, X.iloc[va], y[va], task)
        return {
            "scores": scores,
            "fit_time_s": fit_time,
            "predict_time_per_row_s": per_row,
            "n_train": int(len(tr)),
            "n_val": int(len(va)),
        }, None
    if unit == "final":
        tr, te = splits.train, splits.test
        pipe = build_pipeline(spec, schema, seed)
        t0 = time.perf_counter()
        pipe.fit(X.iloc[tr], y[tr])
        fit_time = time.perf_counter() - t0
        scores, per_row = score_predictions(pipe, X.iloc[te], y[te], task)
        curve = None
        if spec.iterative:
            curve = training_curve(pipe, X.iloc[tr], y[tr], X.iloc[te], y[te], task, metric)
        return {
            "test_scores": scores,
            "fit_time_s": fit_time,
            "predict_time_per_row_s": per_row,
            "n_train": int(len(tr)),
            "n_test": int(len(te)),
            "curve": curve,
        }, dump_estimator(pipe)
    if unit == "curve":
        tr, te = splits.train, splits.test

        def make() -> Pipeline:
            return build_pipeline(spec, schema, seed)

        curve = learning_curve_points(
            make, X.iloc[tr], y[tr], X.iloc[te], y[te], task, metric, random_state=seed
        )
        return {"curve": curve}, None
    raise ValueError(f"unknown unit {unit!r}")
