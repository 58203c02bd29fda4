"""fleetlearn.serving's micro-batcher: concurrent requests share predictor calls, each gets
its own rows, and failures and closing reach the right callers."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest
from model_fixtures import fit, mixed_frame, rows_for, unseen_rows
from sklearn.pipeline import Pipeline

from fleetlearn.data import Dataset, dataset_from_frame
from fleetlearn.model import Predictor
from fleetlearn.serving._batch import MicroBatcher


@pytest.fixture(scope="module")
def toy() -> Dataset:
    return dataset_from_frame(mixed_frame(), "label", name="toy")


class _Instrumented(Predictor):
    """A real predictor that records its calls, can be slowed down, and fails on x=-999."""

    def __init__(self, pipeline: Any, schema: Any, delay: float = 0.0) -> None:
        super().__init__(pipeline, schema)
        self.delay = delay
        self.sizes: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def predict(self, rows, proba=False):
        self.sizes.append(rows.n)
        self.started.set()
        self.release.wait(5)
        time.sleep(self.delay)
        if np.any(rows.columns["x"] == -999):
            raise RuntimeError("boom: the model failed")
        return super().predict(rows, proba)


@pytest.fixture(scope="module")
def toy_pipeline(toy: Dataset) -> Pipeline:
    return fit(toy, "logistic_regression")


def _requests(ds: Dataset, k: int) -> list[Any]:
    frame = unseen_rows(4 * k)
    # Request i holds 1 + i % 4 rows, so a mix-up of slices would show.
    out, at = [], 0
    for i in range(k):
        size = 1 + i % 4
        out.append(rows_for(ds, frame.iloc[at:at + size]))
        at += size
    return out


def test_concurrent_requests_share_calls_and_get_their_own_rows(
        toy: Dataset, toy_pipeline: Pipeline) -> None:
    predictor = _Instrumented(toy_pipeline, toy.schema, delay=0.02)
    plain = Predictor(toy_pipeline, toy.schema)
    requests = _requests(toy, 16)

    async def main() -> list[Any]:
        batcher = MicroBatcher(predictor, max_wait_ms=5)
        try:
            return await asyncio.gather(*(batcher.predict(r, proba=i % 2 == 0)
                                          for i, r in enumerate(requests)))
        finally:
            batcher.close()

    results = asyncio.run(main())
    assert len(predictor.sizes) < 16 // 2, predictor.sizes   # coalesced
    assert sum(predictor.sizes) == sum(r.n for r in requests)
    for i, (req, res) in enumerate(zip(requests, results, strict=True)):
        alone = plain.predict(req, proba=True)
        assert res.labels == alone.labels
        if i % 2 == 0:
            for mine, ref in zip(res.proba, alone.proba, strict=True):
                assert mine == pytest.approx(ref)
        else:
            assert res.proba is None  # only those who asked get probabilities


def test_max_rows_bounds_a_coalesced_call(toy: Dataset, toy_pipeline: Pipeline) -> None:
    predictor = _Instrumented(toy_pipeline, toy.schema)
    requests = _requests(toy, 12)

    async def main() -> None:
        batcher = MicroBatcher(predictor, max_rows=5)
        await asyncio.gather(*(batcher.predict(r) for r in requests))
        batcher.close()

    asyncio.run(main())
    # One request may push a call past max_rows; none starts a call beyond it.
    assert all(size <= 5 + 3 for size in predictor.sizes), predictor.sizes
    assert len(predictor.sizes) >= sum(r.n for r in requests) // 8


def test_a_lone_request_does_not_wait(toy: Dataset, toy_pipeline: Pipeline) -> None:
    predictor = _Instrumented(toy_pipeline, toy.schema)
    rows = _requests(toy, 1)[0]

    async def main() -> float:
        # A waiting batcher would hold the request 60 s: the bound below is far from
        # both that and a normal answer, so a busy machine cannot make this flaky.
        batcher = MicroBatcher(predictor, max_wait_ms=60_000)
        await batcher.predict(rows)                  # warm: the worker exists
        start = time.perf_counter()
        await batcher.predict(rows)
        elapsed = time.perf_counter() - start
        batcher.close()
        return elapsed

    assert asyncio.run(main()) < 20.0


def test_an_exception_reaches_every_waiter(toy: Dataset, toy_pipeline: Pipeline) -> None:
    predictor = _Instrumented(toy_pipeline, toy.schema)
    requests = _requests(toy, 6)
    for r in requests:
        r.columns["x"][:] = -999.0

    async def main() -> list[Any]:
        batcher = MicroBatcher(predictor)
        out = await asyncio.gather(*(batcher.predict(r) for r in requests),
                                   return_exceptions=True)
        # The worker survives a failed call and serves the next request.
        ok = _requests(toy, 1)[0]
        out.append(await batcher.predict(ok))
        batcher.close()
        return out

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) and "boom" in str(r) for r in results[:-1])
    assert results[-1].labels


def test_one_failing_request_does_not_fail_those_coalesced_with_it(
        toy: Dataset, toy_pipeline: Pipeline) -> None:
    predictor = _Instrumented(toy_pipeline, toy.schema)
    requests = _requests(toy, 6)
    requests[3].columns["x"][:] = -999.0

    async def main() -> list[Any]:
        batcher = MicroBatcher(predictor)
        out = await asyncio.gather(*(batcher.predict(r) for r in requests),
                                   return_exceptions=True)
        batcher.close()
        return out

    results = asyncio.run(main())
    assert isinstance(results[3], RuntimeError)
    for i, r in enumerate(results):
        if i != 3:
            assert not isinstance(r, BaseException), r
            assert len(r.labels) == requests[i].n


def test_closing_while_a_call_runs_still_answers_its_callers(
        toy: Dataset, toy_pipeline: Pipeline) -> None:
    """A model evicted from the cache mid-request must not leave its callers hanging."""
    predictor = _Instrumented(toy_pipeline, toy.schema)
    predictor.release.clear()
    requests = _requests(toy, 3)

    async def main() -> list[Any]:
        batcher = MicroBatcher(predictor)
        first = asyncio.ensure_future(batcher.predict(requests[0]))
        while not predictor.started.is_set():
            await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(batcher.predict(r)) for r in requests[1:]]
        await asyncio.sleep(0)
        batcher.close()
        predictor.release.set()
        return await asyncio.wait_for(asyncio.gather(first, *queued, return_exceptions=True),
                                      timeout=10)

    results = asyncio.run(main())
    for req, res in zip(requests, results, strict=True):
        assert not isinstance(res, BaseException), repr(res)
        assert len(res.labels) == req.n


def test_a_closed_batcher_serves_again(toy: Dataset, toy_pipeline: Pipeline) -> None:
    """A request that got the model just before its eviction is still answered."""
    predictor = _Instrumented(toy_pipeline, toy.schema)
    rows = _requests(toy, 1)[0]

    async def main() -> Any:
        batcher = MicroBatcher(predictor)
        await batcher.predict(rows)
        batcher.close()
        return await asyncio.wait_for(batcher.predict(rows), timeout=10)

    assert asyncio.run(main()).labels


