"""Inference statistics (windows, percentiles, time series) and Prometheus metrics.

Nothing here draws: :mod:`fleetlearn.reports` turns ``InferenceStats.series()`` into
figures.
"""

from __future__ import annotations

from fleetlearn.monitoring._metrics import CONTENT_TYPE, ServingMetrics
from fleetlearn.monitoring._stats import (
    LATENCY_BUCKETS_MS,
    InferenceStats,
    merge_windows,
    percentile_from_histogram,
    series,
    summarize,
)

__all__ = [
    "CONTENT_TYPE",
    "InferenceStats",
    "LATENCY_BUCKETS_MS",
    "ServingMetrics",
    "merge_windows",
    "percentile_from_histogram",
    "series",
    "summarize",
]
