"""A steady predict load for the fault tests and benchmarks/faults.py: every request
counted (when it was sent, answered or failed, its latency), summed up by window.

One client thread sends requests one after the other (``interval_s`` apart) over one
keep-alive connection; no retry: a failed request is a failure.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["PredictLoad", "Request", "summary"]


@dataclass(frozen=True)
class Request:
    sent: float  # time.monotonic() when sent
    ok: bool
    latency_s: float
    status: int | None  # HTTP status, None when no answer came
    error: str | None = None


@dataclass
class PredictLoad:
    """POST ``body`` to ``url`` from a thread until :meth:`stop`."""

    url: str
    body: dict[str, Any]
    interval_s: float = 0.05
    timeout_s: float = 10.0
    requests: list[Request] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # e.g. an API key

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="predict-load")

    def start(self) -> PredictLoad:
        self._thread.start()
        return self

    def stop(self) -> list[Request]:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 5)
        return list(self.requests)

    def _loop(self) -> None:
        with httpx.Client(timeout=self.timeout_s, headers=self.headers) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    answer = client.post(self.url, json=self.body)
                    ok, status, error = answer.status_code == 200, answer.status_code, None
                    if not ok:
                        error = answer.text[:200]
                except httpx.HTTPError as exc:
                    ok, status, error = False, None, f"{type(exc).__name__}: {exc}"[:200]
                self.requests.append(Request(sent, ok, time.monotonic() - sent, status, error))
                self._stop.wait(self.interval_s)

    def between(self, start: float, end: float) -> list[Request]:
        return [r for r in self.requests if start <= r.sent < end]


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def summary(requests: list[Request]) -> dict[str, Any]:
    """Sent, ok, failed, failure fraction, p50 and p99 latency (ms) of ``requests``."""
    latencies = [r.latency_s * 1000 for r in requests if r.ok]
    failed = sum(not r.ok for r in requests)
    p50, p99 = _quantile(latencies, 0.50), _quantile(latencies, 0.99)
    return {"sent": len(requests), "ok": len(requests) - failed, "failed": failed,
            "failed_fraction": failed / len(requests) if requests else 0.0,
            "p50_ms": round(p50, 2) if p50 is not None else None,
            "p99_ms": round(p99, 2) if p99 is not None else None,
            "errors": sorted({r.error or str(r.status) for r in requests if not r.ok})[:5]}
