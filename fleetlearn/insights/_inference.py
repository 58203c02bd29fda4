"""What serving recorded about a run's models (latency, throughput, errors, CPU, memory)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetlearn.monitoring import series

if TYPE_CHECKING:
    from fleetlearn.registry import Registry

__all__ = ["run_inference"]


def run_inference(registry: Registry, run_id: str) -> list[dict[str, Any]]:
    """The inference statistics windows of a run's model versions, summed over replicas.

    Only this run's versions are read (``inference_stats(versions=...)``), so a busy
    registry does not slow a report of one run.

    Returns
    -------
    list of dict
        Time-series points (``t, model, version, count, errors, p50_ms, ...``) as
        :func:`fleetlearn.reports.inference_figure` takes them; empty when none of the
        run's models has been served.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> run_inference(Registry(), "3f2a9c")[:1]    # doctest: +SKIP
    [{'t': ..., 'model': 'iris-knn', 'version': 1, 'count': 120, ...}]
    """
    run = registry.get_run(run_id)
    versions = [(mv.name, mv.version) for mv in registry.list_models(run_id=run.id)]
    return series(registry.inference_stats(versions=versions))
