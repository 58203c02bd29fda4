"""Statistics: Prometheus ``/metrics`` and ``/v1/stats`` (inference windows). Role read."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from fleetlearn.api.deps import ReadKey, StateDep
from fleetlearn.api.routes.cluster import refresh_cluster_metrics
from fleetlearn.errors import RegistryError
from fleetlearn.monitoring import CONTENT_TYPE, series, summarize
from fleetlearn.serving import ServingState

__all__ = ["router"]

log = logging.getLogger("fleetlearn.serving")

router = APIRouter(tags=["monitoring"])


@router.get("/metrics", summary="Prometheus metrics", operation_id="getMetrics",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics_route(state: StateDep, _: ReadKey) -> Response:
    await run_in_threadpool(refresh_cluster_metrics, state)
    await run_in_threadpool(_refresh_run_metrics, state)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


def _refresh_run_metrics(state: ServingState) -> None:
    """Set ``fleetlearn_runs`` (blocking: a thread). A registry that does not answer
    drops the series and fails nothing: the other metrics matter most then."""
    try:
        counts = state.registry.count_runs()
    except RegistryError as exc:
        log.warning("/metrics: run counts not read: %s", exc)
        counts = None
    state.metrics.set_runs(counts)


@router.get("/v1/stats", summary="Inference statistics per model version",
            operation_id="getStats")
def stats_route(
    state: StateDep, _: ReadKey,
    scope: Annotated[str, Query(pattern="^(replica|registry)$", description=(
        "'replica': this process, live. 'registry': every replica and earlier runs, "
        "as flushed to the registry (every stats_flush_s seconds)."))] = "replica",
    window: Annotated[float, Query(gt=0, le=86400 * 30, description="Seconds of recent "
                                   "traffic for rates and recent percentiles")] = 60.0,
    model: str | None = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    since: Annotated[float | None, Query(ge=0, le=86400 * 365, description="Only windows of "
                                         "the last N seconds (registry scope)")] = None,
) -> dict[str, Any]:
    if scope == "registry":
        state.flush()
        start = datetime.now(UTC) - timedelta(seconds=since) if since else None
        rows = state.registry.inference_stats(since=start, model=model, version=version)
        started = None
    else:
        state.stats.sample_process()
        rows = [w for w in state.stats.windows()
                if (model is None or w["model"] == model)
                and (version is None or w["version"] == version)]
        started = state.stats.started
    return {"scope": scope, "replica": state.stats.replica,
            "window_s": state.settings.stats_window_s,
            "models": summarize(rows, last_s=window, started=started),
            "series": series(rows)}
