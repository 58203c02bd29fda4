"""The Ray cluster behind this server: ``GET /v1/cluster``. Role read.

Read from the head's GCS by :func:`fleetlearn.cluster.cluster_view` (Ray is loaded on
the first call, never at import) in a worker thread: the GCS call blocks. A server
with no cluster address answers ``mode: local``; a head that does not answer is
reported, not an error of this server: ``reachable: false`` with the reason (the GUI
draws it; ``fleetlearn_cluster_up`` is 0).
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
    try:
        view = cluster_view(address, timeout=timeout)
    except ClusterError as exc:
        return {"mode": "cluster", "address": address, "source": source,
                "reachable": False, "error": " ".join(str(exc).split())}
    return {**view.to_dict(), "source": source, "reachable": True}


@router.get("/cluster", summary="The Ray cluster: nodes alive and dead, resources total "
            "and in use, pending tasks, the address", operation_id="getCluster",
            response_model=ClusterPublic)
async def cluster_route(state: StateDep, _: ReadKey) -> dict[str, Any]:
    answer = await run_in_threadpool(cluster_answer, state.settings.ray_address)
    state.metrics.set_cluster(answer)
    return answer


def refresh_cluster_metrics(state: ServingState, timeout: float = 2.0) -> None:
    """Set the ``fleetlearn_cluster_*`` gauges before a scrape (blocking: a thread).

    A head that does not answer sets ``fleetlearn_cluster_up`` to 0 and fails nothing:
    the other metrics matter most when the cluster is in trouble.
    """
    state.metrics.set_cluster(cluster_answer(state.settings.ray_address, timeout=timeout))
