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
        self.auth_failures = Counter("fleetlearn_auth_failures", "Requests refused for a "
                                     "missing, unknown or revoked API key, by client address.",
                                     ("client",), registry=r)
        self.auth_throttled = Counter("fleetlearn_auth_throttled", "Requests answered 429 "
                                      "because their address kept failing to authenticate.",
                                      ("client",), registry=r)
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
        # The Ray cluster behind the server (set from GET /v1/cluster's answer, refreshed
        # on each scrape of /metrics), labelled by its address: absent in local mode.
        self.cluster_up = Gauge("fleetlearn_cluster_up", "1 when the cluster's head "
                                "answered the last read, 0 when it did not.", ("address",),
                                registry=r)
        self.cluster_nodes = Gauge("fleetlearn_cluster_nodes", "Nodes by state (alive, "
                                   "dead) as the head reports them.", ("address", "state"),
                                   registry=r)
        self.cluster_cpus = Gauge("fleetlearn_cluster_cpus", "CPUs of the alive nodes: total, "
                                  "and used by running tasks and actors.", ("address", "kind"),
                                  registry=r)
        self.cluster_memory = Gauge("fleetlearn_cluster_memory_bytes", "Ray's logical "
                                    "memory of the alive nodes: total and reserved.",
                                    ("address", "kind"), registry=r)
        self.cluster_object_store = Gauge("fleetlearn_cluster_object_store_bytes",
                                          "Object store of the alive nodes: total and "
                                          "reserved.", ("address", "kind"), registry=r)
        self.cluster_pending = Gauge("fleetlearn_cluster_pending_tasks", "Tasks and actors "
                                     "waiting for resources.", ("address",), registry=r)
        self._cluster_gauges = (self.cluster_up, self.cluster_nodes, self.cluster_cpus,
                                self.cluster_memory, self.cluster_object_store,
                                self.cluster_pending)
        # Runs in the registry by status, read on each scrape: every server sharing the
        # registry reports the same numbers (alerts use max by status, not sum).
        self.runs = Gauge("fleetlearn_runs", "Runs in the registry by status (running, "
                          "finished, failed, interrupted), read at each scrape.",
                          ("status",), registry=r)
        # process_cpu_seconds_total, process_resident_memory_bytes, open fds, ...
        ProcessCollector(registry=r)

    def set_cluster(self, answer: dict) -> None:
        """Set the cluster gauges from a ``GET /v1/cluster`` answer (a plain dict):
        ``reachable: false`` sets only ``fleetlearn_cluster_up`` to 0; a ``local``
        answer removes them all.

        Examples
        --------
        >>> m = ServingMetrics()
        >>> m.set_cluster({"mode": "cluster", "address": "h:1", "nodes_alive": 3,
        ...                "nodes_dead": 1, "pending_tasks": 2,
        ...                "resources": {"cpus": {"total": 3, "used": 1}}})
        >>> b'fleetlearn_cluster_nodes{address="h:1",state="alive"} 3.0' in m.render()
        True
        """
        for gauge in self._cluster_gauges:  # one cluster at a time: drop an old address
            gauge.clear()
        if answer.get("mode") != "cluster":
            return
        address = str(answer.get("address") or "")
        if answer.get("reachable") is False:
            self.cluster_up.labels(address).set(0)
            return
        self.cluster_up.labels(address).set(1)
        self.cluster_nodes.labels(address, "alive").set(answer.get("nodes_alive", 0))
        self.cluster_nodes.labels(address, "dead").set(answer.get("nodes_dead", 0))
        self.cluster_pending.labels(address).set(answer.get("pending_tasks", 0))
        resources = answer.get("resources", {})
        for key, gauge in (("cpus", self.cluster_cpus), ("memory", self.cluster_memory),
                           ("object_store", self.cluster_object_store)):
            use = resources.get(key, {})
            gauge.labels(address, "total").set(use.get("total", 0))
            gauge.labels(address, "used").set(use.get("used", 0))

    def set_runs(self, counts: dict[str, int] | None) -> None:
        """Set ``fleetlearn_runs`` from :meth:`Registry.count_runs`; ``None`` (the
        registry did not answer) removes the series rather than report stale counts.

        Examples
        --------
        >>> m = ServingMetrics()
        >>> m.set_runs({"running": 1, "failed": 2})
        >>> b'fleetlearn_runs{status="failed"} 2.0' in m.render()
        True
        """
        self.runs.clear()
        for status, n in (counts or {}).items():
            self.runs.labels(status).set(n)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
