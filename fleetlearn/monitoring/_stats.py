"""Inference statistics per model version, in fixed time windows.

Latencies go into a fixed, log-spaced histogram (25 % wide buckets from 0.05 ms to
about 2 minutes). Fixed buckets are what make statistics add up: windows from several
replicas, or from before a restart, merge by summing counts, and percentiles are read
from the merged histogram (interpolated within a bucket, so within ~12 % of the truth).
"""

from __future__ import annotations

import bisect
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil

__all__ = [
    "LATENCY_BUCKETS_MS",
    "InferenceStats",
    "merge_windows",
    "percentile_from_histogram",
]

#: Upper bounds (ms) of the latency buckets; a last, open bucket holds anything slower.
LATENCY_BUCKETS_MS: tuple[float, ...] = tuple(0.05 * 1.25**i for i in range(64))


def _bucket(ms: float) -> int:
    return bisect.bisect_left(LATENCY_BUCKETS_MS, ms)


def percentile_from_histogram(histogram: dict[Any, int], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of latencies counted in ``histogram``.

    ``histogram`` maps bucket index (int or its string, as JSON stores it) to count.

    >>> percentile_from_histogram({_bucket(1.0): 10}, 50) <= 1.0
    True
    """
    counts = sorted((int(k), int(v)) for k, v in histogram.items() if int(v) > 0)
    total = sum(v for _, v in counts)
    if total == 0:
        return None
    rank = q / 100 * total
    seen = 0
    for index, count in counts:
        if seen + count >= rank:
            low = LATENCY_BUCKETS_MS[index - 1] if index > 0 else 0.0
            high = LATENCY_BUCKETS_MS[index] if index < len(LATENCY_BUCKETS_MS) else low * 1.25
            share = (rank - seen) / count if count else 1.0
            return low + (high - low) * min(max(share, 0.0), 1.0)
        seen += count
    return LATENCY_BUCKETS_MS[-1]


@dataclass
class _Window:
    requests: int = 0
    errors: int = 0
    rows: int = 0
    latency_sum_ms: float = 0.0
    histogram: dict[int, int] = field(default_factory=dict)
    dirty: bool = True


def merge_windows(windows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum windows (from any replicas and times) into one: counts, histogram, percentiles.

    >>> merge_windows([{"requests": 2, "errors": 1, "rows": 4, "latency_sum_ms": 3.0,
    ...                 "histogram": {"10": 2}}])["error_rate"]
    0.5
    """
    requests = errors = rows = 0
    latency = 0.0
    hist: dict[int, int] = {}
    for w in windows:
        requests += int(w["requests"])
        errors += int(w["errors"])
        rows += int(w["rows"])
        latency += float(w["latency_sum_ms"])
        for k, v in (w.get("histogram") or {}).items():
            hist[int(k)] = hist.get(int(k), 0) + int(v)
    return {
        "requests": requests,
        "errors": errors,
        "rows": rows,
        "error_rate": errors / requests if requests else 0.0,
        "mean_ms": latency / requests if requests else None,
        "p50_ms": percentile_from_histogram(hist, 50),
        "p95_ms": percentile_from_histogram(hist, 95),
        "p99_ms": percentile_from_histogram(hist, 99),
        "histogram": {str(k): v for k, v in sorted(hist.items())},
    }


class InferenceStats:
    """Live statistics of one serving process (a replica), kept for ``keep`` windows.

    Parameters
    ----------
    window_s : float
        Width of a window in seconds.
    keep : int
        Windows kept in memory per model version (older ones are dropped; they were
        flushed to the registry).
    replica : str, optional
        This process's name in persisted statistics; host, pid and a random suffix by
        default.

    Examples
    --------
    >>> stats = InferenceStats(window_s=10)
    >>> stats.record("iris-rf", 1, latency_ms=2.5, rows=1)
    >>> stats.summary()[0]["requests"]
    1
    """

    def __init__(self, window_s: float = 10.0, keep: int = 360,
                 replica: str | None = None) -> None:
        self.window_s = float(window_s)
        self.keep = keep
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.started = time.time()
        self._lock = threading.Lock()
        # (model, version) -> {window start (epoch s): _Window}
        self._windows: dict[tuple[str, int], dict[float, _Window]] = {}
        self._process: dict[float, dict[str, float]] = {}
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # prime: the next call measures from here

    def _start(self, now: float) -> float:
        return math.floor(now / self.window_s) * self.window_s

    def record(self, model: str, version: int, latency_ms: float, rows: int,
               error: bool = False, now: float | None = None) -> None:
        """Count one request to ``model`` version ``version``."""
        start = self._start(time.time() if now is None else now)
        with self._lock:
            windows = self._windows.setdefault((model, int(version)), {})
            w = windows.get(start)
            if w is None:
                w = windows[start] = _Window()
                if len(windows) > self.keep:
                    del windows[min(windows)]
            w.requests += 1
            w.errors += int(error)
            w.rows += rows
            w.latency_sum_ms += latency_ms
            b = _bucket(latency_ms)
            w.histogram[b] = w.histogram.get(b, 0) + 1
            w.dirty = True

    def sample_process(self, now: float | None = None) -> dict[str, float]:
        """Record this process's CPU (% of one core) and resident memory for the window."""
        snap = {"cpu_percent": float(self._proc.cpu_percent(None)),
                "rss_bytes": float(self._proc.memory_info().rss)}
        start = self._start(time.time() if now is None else now)
        with self._lock:
            self._process[start] = snap
            while len(self._process) > self.keep:
                del self._process[min(self._process)]
        return snap

    def _rows(self, only_dirty: bool = False) -> list[dict[str, Any]]:
        out = []
        with self._lock:
            for (model, version), windows in self._windows.items():
                for start, w in sorted(windows.items()):
                    if only_dirty and not w.dirty:
                        continue
                    out.append({
                        "replica": self.replica, "model": model, "version": version,
                        "window_start": datetime.fromtimestamp(start, UTC),
                        "window_s": self.window_s, "requests": w.requests,
                        "errors": w.errors, "rows": w.rows,
                        "latency_sum_ms": w.latency_sum_ms,
                        "histogram": {str(k): v for k, v in w.histogram.items()},
                        "process": dict(self._process.get(start, {})),
                    })
                    if only_dirty:
                        w.dirty = False
        return out

    def windows(self) -> list[dict[str, Any]]:
        """Every window held in memory, as the registry stores them."""
        return self._rows()

    def take_dirty(self) -> list[dict[str, Any]]:
        """Windows changed since the last call (what a flush must write)."""
        return self._rows(only_dirty=True)

    def mark_dirty(self, windows: Iterable[dict[str, Any]]) -> None:
        """Put windows back as unflushed (the registry write failed)."""
        with self._lock:
            for row in windows:
                key = (row["model"], int(row["version"]))
                start = row["window_start"].timestamp()
                w = self._windows.get(key, {}).get(start)
                if w is not None:
                    w.dirty = True

    def summary(self, last_s: float = 60.0, now: float | None = None) -> list[dict[str, Any]]:
        """Per model version: totals since start, and rates and percentiles over ``last_s``."""
        return summarize(self.windows(), last_s=last_s, now=now, started=self.started)

    def series(self) -> list[dict[str, Any]]:
        """One point per model version and window, the shape the figures take."""
        return series(self.windows())


def summarize(rows: list[dict[str, Any]], last_s: float = 60.0, now: float | None = None,
              started: float | None = None) -> list[dict[str, Any]]:
    """Summaries per (model, version) of stored or live windows (see InferenceStats)."""
    now = time.time() if now is None else now
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], int(r["version"])), []).append(r)
    out = []
    for (model, version), ws in sorted(groups.items()):
        total = merge_windows(ws)
        recent = [w for w in ws if w["window_start"].timestamp() + w["window_s"] > now - last_s]
        rec = merge_windows(recent)
        first = min(w["window_start"].timestamp() for w in recent) if recent else now
        if started is not None:
            first = max(first, started)
        span = max(min(last_s, now - first), 1e-9)
        out.append({
            "model": model, "version": version,
            "requests": total["requests"], "errors": total["errors"], "rows": total["rows"],
            "error_rate": total["error_rate"], "mean_ms": total["mean_ms"],
            "p50_ms": total["p50_ms"], "p95_ms": total["p95_ms"], "p99_ms": total["p99_ms"],
            "recent": {
                "seconds": last_s, "requests": rec["requests"], "errors": rec["errors"],
                "error_rate": rec["error_rate"], "rps": rec["requests"] / span,
                "rows_per_s": rec["rows"] / span, "p50_ms": rec["p50_ms"],
                "p95_ms": rec["p95_ms"], "p99_ms": rec["p99_ms"],
            },
        })
    return out


def series(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time series points: one per (model, version, window), summed over replicas."""
    groups: dict[tuple[str, int, datetime], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], int(r["version"]), r["window_start"]), []).append(r)
    out = []
    for (model, version, start), ws in sorted(groups.items(), key=lambda p: (p[0][2], p[0][:2])):
        m = merge_windows(ws)
        width = max(float(ws[0]["window_s"]), 1e-9)
        procs = [w.get("process") or {} for w in ws]
        cpu = [p["cpu_percent"] for p in procs if "cpu_percent" in p]
        rss = [p["rss_bytes"] for p in procs if "rss_bytes" in p]
        out.append({
            "t": start.isoformat(), "model": model, "version": version,
            "count": m["requests"], "errors": m["errors"], "rows": m["rows"],
            "p50_ms": m["p50_ms"], "p95_ms": m["p95_ms"], "p99_ms": m["p99_ms"],
            "rps": m["requests"] / width,
            "cpu_percent": sum(cpu) if cpu else None,
            "rss_bytes": sum(rss) if rss else None,
        })
    return out
