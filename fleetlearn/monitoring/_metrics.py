"""Prometheus metrics of a serving process, on their own collector registry.

Each app gets its own ``CollectorRegistry`` (tests build many apps in one process;
the global default registry would refuse duplicate metric names).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST as CONTENT_TYPE,
)
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

__all__ = ["ServingMetrics", "CONTENT_TYPE"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5,
                    5.0, 10.0)


class ServingMetrics:
    """The metrics ``/metrics`` exposes.

    Examples
    --------
    >>> m = ServingMetrics()
    >>> m.requests.labels("/healthz", "GET", "200", "", "").inc()
    >>> b"fleetlearn_http_requests_total" in m.render()
    True
    """

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        labels = ("route", "method", "status", "model", "version")
        self.requests = Counter("fleetlearn_http_requests", "HTTP requests by route, method, "
                                "status and model version (empty when not a model route).",
                                labels, registry=r)
        self.latency = Histogram("fleetlearn_http_request_duration_seconds",
                                 "Time from request to response.", ("route", "model", "version"),
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("fleetlearn_http_requests_in_flight",
                               "Requests being served right now.", registry=r)
        self.rows = Counter("fleetlearn_rows_predicted", "Rows predicted.",
                            ("model", "version"), registry=r)
        self.unseen = Counter("fleetlearn_unseen_categories",
                              "Categorical values never seen in training (handled by the "
                              "pipeline), by column.", ("model", "version", "column"), registry=r)
        self.batch_rows = Histogram("fleetlearn_predict_batch_rows", "Rows per predict call "
                                    "after coalescing concurrent requests.", ("model", "version"),
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096),
                                    registry=r)
        self.batch_requests = Histogram("fleetlearn_predict_batch_requests",
                                        "Requests coalesced into one predict call.",
                                        ("model", "version"),
                                        buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.load_seconds = Histogram("fleetlearn_model_load_seconds", "Time to load a model "
                                      "version (read, verify digest, deserialise, compile).",
                                      ("model", "version"),
                                      buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
                                      registry=r)
        self.load_failures = Counter("fleetlearn_model_load_failures", "Model version loads "
                                     "that failed, by reason: integrity (artifact missing or "
                                     "not matching its sha256), untrusted (types outside the "
                                     "allow-list, or not a skops file), error (other).",
                                     ("model", "version", "reason"), registry=r)
        self.cache_hits = Counter("fleetlearn_model_cache_hits", "Predictions served by a "
                                  "model already in memory.", registry=r)
        self.cache_misses = Counter("fleetlearn_model_cache_misses", "Predictions that had to "
                                    "load their model.", registry=r)
        self.cache_evictions = Counter("fleetlearn_model_cache_evictions", "Models evicted "
                                       "from the cache (count or byte limit).", registry=r)
        self.cache_models = Gauge("fleetlearn_model_cache_models", "Models in memory.",
                                  registry=r)
        self.cache_bytes = Gauge("fleetlearn_model_cache_bytes", "Artifact bytes of the "
                                 "models in memory.", registry=r)
        # process_cpu_seconds_total, process_resident_memory_bytes, open fds, ...
        ProcessCollector(registry=r)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
