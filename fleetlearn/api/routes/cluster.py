"""The Ray cluster behind this server: ``GET /v1/cluster``. Role read.

Read from the head's GCS by :func:`fleetlearn.cluster.cluster_view` (Ray is loaded on
the first call, never at import) in a worker thread: the GCS call blocks. A server
with no cluster address answers ``mode: local``; an address nobody answers at is a
503.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from fleetlearn.api.deps import ReadKey, StateDep
from fleetlearn.api.schemas import ClusterPublic
from fleetlearn.cluster import cluster_view, discover_address
from fleetlearn.errors import ClusterError
from fleetlearn.serving import ServingState

__all__ = ["router", "cluster_answer", "refresh_cluster_metrics"]

router = APIRouter(prefix="/v1", tags=["cluster"])


def cluster_answer(ray_address: str | None, timeout: float = 5.0) -> dict[str, Any]:
    """The body of ``GET /v1/cluster`` (blocking: call it from a thread)."""
    address, source = discover_address(ray_address)
    if address is None:
        return {"mode": "local", "address": None, "source": None}
    return {**cluster_view(address, timeout=timeout).to_dict(), "source": source}


@router.get("/cluster", summary="The Ray cluster: nodes alive and dead, resources total "
            "and in use, pending tasks, the address", operation_id="getCluster",
            response_model=ClusterPublic)
async def cluster_route(state: StateDep, _: ReadKey) -> dict[str, Any]:
    answer = await run_in_threadpool(cluster_answer, state.settings.ray_address)
    state.metrics.set_cluster(answer)
    return answer


def refresh_cluster_metrics(state: ServingState, timeout: float = 2.0) -> None:
    """Set the ``fleetlearn_cluster_*`` gauges before a scrape (blocking: a thread).

    A head that does not answer sets ``fleetlearn_cluster_up`` to 0 instead of failing
    the scrape: the other metrics matter most when the cluster is in trouble.
    """
    try:
        answer = cluster_answer(state.settings.ray_address, timeout=timeout)
    except ClusterError:
        answer = None
    state.metrics.set_cluster(answer)
