"""A steady predict load for the fault tests and benchmarks/faults.py: every request
counted (when it was sent, answered or failed, its latency), summed up by window.

One client thread sends requests one after the other (``interval_s`` apart) over one
keep-alive connection; no retry: a failed request is a failure, and so is an answer
200 whose predictions are not ``expected`` (when given). tests/fault_figures.py turns
the counts into the figures the fault tests write.
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
    """POST ``body`` to ``url`` from a thread until :meth:`stop` (or the ``with`` ends)."""

    url: str
    body: dict[str, Any]
    interval_s: float = 0.05
    timeout_s: float = 10.0
    headers: dict[str, str] | None = None
    #: The predictions every answer must hold; None: any answer 200 is a success.
    expected: list[Any] | None = None
    requests: list[Request] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # e.g. an API key

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="predict-load")

    def start(self) -> PredictLoad:
        self._thread.start()
        return self

    def stop(self) -> list[Request]:
        """Stop sending (again: a no-op); every request so far."""
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=self.timeout_s + 5)
        return list(self.requests)

    def __enter__(self) -> PredictLoad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def sent(self) -> int:
        return len(self.requests)

    @property
    def ok(self) -> int:
        return sum(r.ok for r in list(self.requests))

    @property
    def failures(self) -> list[str]:
        """What each failed request got (its status and answer, or its exception)."""
        return [r.error or str(r.status) for r in list(self.requests) if not r.ok]

    def _loop(self) -> None:
        with httpx.Client(timeout=self.timeout_s, headers=self.headers) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    answer = client.post(self.url, json=self.body)
                    ok, status, error = answer.status_code == 200, answer.status_code, None
                    if not ok:
                        error = f"{answer.status_code} {answer.text[:200]}"
                    elif (self.expected is not None
                          and answer.json().get("predictions") != self.expected):
                        ok, error = False, f"wrong predictions: {answer.text[:200]}"
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


class RetryingLoad:
    """Clients predicting without pause (run ``run(k)`` in a few threads), each request
    retried up to ``retries`` times with a growing pause; every answer is checked
    against ``expected`` (fault test 4, locally and in containers)."""

    def __init__(self, url: str, model: str, records: list[dict], expected: list[Any], *,
                 headers: dict[str, str] | None = None, retries: int = 5) -> None:
        self.url, self.headers, self.records, self.expected = url, headers or {}, records, expected
        self.route = f"/v1/models/{model}/predict"
        self.retries_allowed = retries
        self.sent = self.answered = self.retries = self.lost = self.wrong = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def count(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)

    def run(self, k: int) -> None:
        i = k
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=15) as client:
            while not self.stop.is_set():
                row = i % len(self.records)
                i += 7
                self.count("sent")
                for attempt in range(self.retries_allowed + 1):
                    try:
                        r = client.post(self.route, json={"records": [self.records[row]]})
                        if r.status_code == 200:
                            self.count("answered")
                            if r.json()["predictions"] != [self.expected[row]]:
                                self.count("wrong")
                            break
                        self.errors.append(f"{r.status_code} {r.text[:200]}")
                    except httpx.HTTPError as exc:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    if attempt == self.retries_allowed:
                        self.count("lost")
                    else:
                        self.count("retries")
                        time.sleep(0.2 * (attempt + 1))


def answering_replicas(url: str, want: int, *, headers: dict[str, str] | None = None,
                       tries: int = 80) -> set[str]:
    """Replica ids answering ``/v1/info``, each asked on a new connection: the proxies
    share the port and each prefers the replica on its own node, so one kept-alive
    connection would only ever meet one. A probe that gets no answer (a connection
    reset while Serve replaces the lost replica) is simply not an answer."""
    seen: set[str] = set()
    for _ in range(tries):
        try:
            r = httpx.get(f"{url}/v1/info", headers={**(headers or {}), "Connection": "close"},
                          timeout=30)
        except httpx.HTTPError:  # a proxy going away as the cluster settles: not answering
            continue
        if r.status_code == 200:
            seen.add(r.json()["replica"])
        if len(seen) >= want:
            break
    return seen
