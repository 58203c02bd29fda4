"""Coalescing concurrent prediction requests into one ``predict`` call.

A fitted pipeline costs about the same per call for 1 row as for 100 (see
``fleetlearn.model.Predictor``), so under concurrent load the biggest saving is to call it once for
many requests. One worker per model version takes the first waiting request, then
every request already queued (up to ``max_rows``); while that call runs in a thread,
new requests queue up for the next one. A lone request therefore never waits. Under
load (the previous call coalesced several requests), the worker also waits up to
``max_wait_ms`` for more requests to join, trading a bounded delay for bigger calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from fleetlearn.data import Rows, concat_rows
from fleetlearn.model import Prediction, Predictor

__all__ = ["MicroBatcher"]


@dataclass
class _Job:
    rows: Rows
    proba: bool
    future: asyncio.Future[Prediction]


class MicroBatcher:
    """Serve one predictor's requests, coalescing concurrent ones.

    Parameters
    ----------
    predictor : Predictor
    max_rows : int
        Most rows per coalesced call (a single bigger request still runs alone).
    max_wait_ms : float
        Longest a request waits for others to join it, and only under load.
    executor : Executor, optional
        Where ``predict`` runs (the default thread pool otherwise), so the event loop
        keeps accepting requests meanwhile.
    on_batch : callable, optional
        Called with (requests, rows) after each call, for metrics.

    Examples
    --------
    >>> batcher = MicroBatcher(predictor)                 # doctest: +SKIP
    >>> prediction = await batcher.predict(rows)          # doctest: +SKIP
    """

    def __init__(self, predictor: Predictor, max_rows: int = 1024, max_wait_ms: float = 2.0,
                 executor: Executor | None = None,
                 on_batch: Callable[[int, int], None] | None = None) -> None:
        self.predictor = predictor
        self.max_rows = max_rows
        self.max_wait_s = max_wait_ms / 1000
        self.executor = executor
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Job | None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._last_size = 1
        self.calls = 0

    async def predict(self, rows: Rows, proba: bool = False) -> Prediction:
        """Predict ``rows``, possibly in one call with other requests."""
        loop = asyncio.get_running_loop()
        if (self._queue is None or self._worker is None or self._worker.done()
                or self._closing):
            # First use, or closed (the model was evicted while this request held it):
            # a fresh worker; a closing one finishes what it accepted, then stops.
            self._closing = False
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run(self._queue))
        future: asyncio.Future[Prediction] = loop.create_future()
        self._queue.put_nowait(_Job(rows, proba, future))
        return await future

    async def _run(self, queue: asyncio.Queue[_Job | None]) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            first = await queue.get()
            if first is None:  # close(): everything accepted before it was served
                return
            jobs = [first]
            rows = first.rows.n
            deadline = time.monotonic() + (self.max_wait_s if self._last_size > 1 else 0.0)
            while rows < self.max_rows:
                if queue.empty():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        break
                else:
                    job = queue.get_nowait()
                if job is None:
                    stop = True
                    break
                jobs.append(job)
                rows += job.rows.n
            self._last_size = len(jobs)
            live = [j for j in jobs if not j.future.done()]  # skip cancelled requests
            if not live:
                continue
            try:
                result = await loop.run_in_executor(self.executor, self._call, live)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets an answer
                if len(live) == 1:
                    if not live[0].future.done():
                        live[0].future.set_exception(exc)
                    continue
                # One request's rows may be what failed: retry each alone, so only the
                # request at fault gets the error.
                for j in live:
                    try:
                        (part,) = await loop.run_in_executor(self.executor, self._call, [j])
                    except Exception as one:  # noqa: BLE001
                        if not j.future.done():
                            j.future.set_exception(one)
                    else:
                        if not j.future.done():
                            j.future.set_result(part)
                continue
            for j, part in zip(live, result, strict=True):
                if not j.future.done():
                    j.future.set_result(part)

    def _call(self, jobs: list[_Job]) -> list[Prediction]:
        merged = concat_rows([j.rows for j in jobs])
        proba = any(j.proba for j in jobs)
        out = self.predictor.predict(merged, proba=proba)
        self.calls += 1
        if self.on_batch is not None:
            self.on_batch(len(jobs), merged.n)
        parts, at = [], 0
        for j in jobs:
            end = at + j.rows.n
            parts.append(Prediction(
                out.labels[at:end],
                out.proba[at:end] if (out.proba is not None and j.proba) else None,
                out.seconds,
            ))
            at = end
        return parts

    def close(self) -> None:
        """Stop the worker once it has answered every request already accepted.

        Requests in flight when a model is evicted still get their predictions; the
        worker then exits, releasing the model. A later :meth:`predict` starts anew.
        """
        if self._queue is not None and self._worker is not None and not self._worker.done():
            self._closing = True
            self._queue.put_nowait(None)
