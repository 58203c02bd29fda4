"""The compiled predictor answers exactly as the pipeline; the micro-batcher coalesces safely."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from serving_fixtures import fit, mixed_frame, records_of
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fleetlearn.data import Dataset, InputError, coerce_frame, dataset_from_frame, parse_rows
from fleetlearn.model import Predictor
from fleetlearn.serving._batch import MicroBatcher


@pytest.fixture(scope="module")
def toy() -> Dataset:
    return dataset_from_frame(mixed_frame(), "label", name="toy")


@pytest.fixture(scope="module")
def toy_regression() -> Dataset:
    frame = mixed_frame(seed=3).drop(columns=["label"])
    rng = np.random.default_rng(3)
    frame["score"] = (np.nan_to_num(frame["x"]) * 2 + (frame["flag"] == "yes")
                      + (frame["color"] == "red") * 3 + rng.normal(0, 0.1, len(frame)))
    return dataset_from_frame(frame, "score", name="toy_score")


def _new_rows(n: int = 60) -> pd.DataFrame:
    """Rows the models never saw: missing values in every column, unseen categories."""
    frame = mixed_frame(n, seed=11)
    frame.loc[frame.index[::5], "color"] = "purple"      # unseen category
    frame.loc[frame.index[1::6], "color"] = None
    frame.loc[frame.index[2::7], "flag"] = None
    frame.loc[frame.index[3::8], "when"] = None
    frame.loc[frame.index[4::9], "x"] = np.nan
    frame.loc[frame.index[0], "x"] = 1e4                 # far outside the training range
    return frame


def _check_same_as_pipeline(pipeline: Pipeline, ds: Dataset, proba: bool) -> Predictor:
    frame = _new_rows()
    predictor = Predictor(pipeline, ds.schema)
    assert predictor.compiled, predictor.compiled_reason
    rows = parse_rows({"records": records_of(frame, drop=(ds.schema.target,))}, ds.schema,
                      known_extra=predictor.known_extra)
    assert rows.unseen.get("color", 0) > 0
    got = predictor.predict(rows, proba=proba)
    X = coerce_frame(frame, ds.schema)
    assert got.labels == pipeline.predict(X).tolist()
    if proba:
        want = pipeline.predict_proba(X)
        matrix = np.array([[p[str(c)] for c in predictor.classes] for p in got.proba])
        np.testing.assert_allclose(matrix, want, rtol=1e-12, atol=1e-15)
    return predictor


@pytest.mark.parametrize("model", [
    "logistic_regression", "random_forest:n_estimators=15", "knn:n_neighbors=5",
])
def test_compiled_classifier_matches_the_pipeline(toy: Dataset, model: str) -> None:
    predictor = _check_same_as_pipeline(fit(toy, model), toy, proba=True)
    assert predictor.classes == ["a", "b"]
    assert predictor.has_proba


@pytest.mark.parametrize("model", ["ridge", "random_forest:n_estimators=10", "knn"])
def test_compiled_regressor_matches_the_pipeline(toy_regression: Dataset, model: str) -> None:
    pipeline = fit(toy_regression, model)
    frame = _new_rows().drop(columns=["label"])
    predictor = Predictor(pipeline, toy_regression.schema)
    assert predictor.compiled, predictor.compiled_reason
    assert not predictor.has_proba
    got = predictor.predict(_rows_for(toy_regression, frame), proba=True)
    assert got.proba is None  # a regressor has no probabilities, even when asked
    want = pipeline.predict(coerce_frame(frame, toy_regression.schema))
    np.testing.assert_allclose(got.labels, want, rtol=1e-12, atol=1e-12)


def test_predictions_are_plain_json_values(toy: Dataset) -> None:
    predictor = Predictor(fit(toy, "logistic_regression"), toy.schema)
    out = predictor.predict(_rows_for(toy, _new_rows(3)), proba=True)
    assert all(type(v) is str for v in out.labels)
    assert all(type(k) is str and type(v) is float for p in out.proba for k, v in p.items())
    assert all(abs(sum(p.values()) - 1.0) < 1e-9 for p in out.proba)


def test_integer_class_labels_come_back_as_ints(toy: Dataset) -> None:
    frame = mixed_frame()
    frame["label"] = (frame["label"] == "a").astype(int)
    ds = dataset_from_frame(frame, "label", task="classification", name="toy_int")
    predictor = Predictor(fit(ds, "logistic_regression"), ds.schema)
    out = predictor.predict(parse_rows({"records": records_of(frame.head(4), drop=("label",))},
                                       ds.schema, known_extra=predictor.known_extra), proba=True)
    assert predictor.classes == [0, 1]
    assert all(type(v) is int for v in out.labels)
    assert set(out.proba[0]) == {"0", "1"}


class _Clip(TransformerMixin, BaseEstimator):
    """A user's own step: the predictor cannot know what it does."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.clip(X, -1.0, 1.0)


class _ClippedScaler(StandardScaler):
    """Looks like a StandardScaler, behaves differently: equality cannot be assumed."""

    def transform(self, X, copy=None):
        return np.clip(super().transform(X, copy=copy), -0.5, 0.5)


def _rows_for(ds: Dataset, frame: pd.DataFrame):
    target = tuple(c for c in [ds.schema.target] if c in frame)
    return parse_rows({"records": records_of(frame, drop=target)}, ds.schema,
                      known_extra=frozenset(ds.schema.dropped) | {ds.schema.target})


def test_unknown_pipeline_shape_is_served_by_the_plain_pipeline(toy: Dataset) -> None:
    base = fit(toy, "logistic_regression")
    pipeline = Pipeline([("preprocess", base.steps[0][1]), ("clip", _Clip()),
                         ("model", LogisticRegression().fit(
                             _Clip().transform(base.steps[0][1].transform(toy.X)), toy.y))])
    predictor = Predictor(pipeline, toy.schema)
    assert not predictor.compiled
    frame = _new_rows()
    got = predictor.predict(_rows_for(toy, frame), proba=True)
    X = coerce_frame(frame, toy.schema)
    assert got.labels == pipeline.predict(X).tolist()
    np.testing.assert_allclose([[p["a"], p["b"]] for p in got.proba], pipeline.predict_proba(X))


def test_a_step_that_only_looks_familiar_is_caught_by_the_probe(toy: Dataset) -> None:
    pipeline = fit(toy, "logistic_regression")
    numeric = pipeline.steps[0][1].named_transformers_["numeric"]
    # Replace the fitted scaler by a subclass with the same statistics but other output.
    fitted = numeric.named_steps["scale"]
    clipped = _ClippedScaler()
    clipped.__dict__.update(fitted.__dict__)
    numeric.steps[-1] = ("scale", clipped)
    predictor = Predictor(pipeline, toy.schema)
    assert not predictor.compiled
    assert "differs" in predictor.compiled_reason
    frame = _new_rows()
    got = predictor.predict(_rows_for(toy, frame))
    assert got.labels == pipeline.predict(coerce_frame(frame, toy.schema)).tolist()


# ------------------------------------------------------------------ micro-batching


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
    frame = _new_rows(4 * k)
    # Request i holds 1 + i % 4 rows, so a mix-up of slices would show.
    out, at = [], 0
    for i in range(k):
        size = 1 + i % 4
        out.append(_rows_for(ds, frame.iloc[at:at + size]))
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


def test_values_the_model_cannot_handle_are_an_input_error(toy: Dataset) -> None:
    """1e308 is valid JSON and a finite number, but overflows scaling: a 422, not a 500."""
    for model in ("logistic_regression", "random_forest:n_estimators=5"):
        predictor = Predictor(fit(toy, model), toy.schema)
        frame = _new_rows(3)
        frame["x"] = [1.0, 1.7e308, -1e300]
        with pytest.raises(InputError) as info:
            predictor.predict(_rows_for(toy, frame))
        assert info.value.status == 422
        assert "too large" in str(info.value)


def test_a_non_finite_regression_prediction_is_an_input_error_naming_the_row(
        toy: Dataset) -> None:
    """Huge finite inputs can make a linear model answer inf: a 422, never a null."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    predictor = Predictor(fit(toy, "logistic_regression"), toy.schema)
    # Swap in a regressor whose output overflows for one row: the predictor's check
    # runs on what the estimator answers, whatever the preprocessing did.
    features = predictor.features(_rows_for(toy, _new_rows(3)))
    huge = LinearRegression().fit(features[:2], [0.0, 1.0])
    huge.coef_ = np.full_like(huge.coef_, 1e308)
    predictor.estimator = huge
    predictor.pipeline = Pipeline([*predictor.pipeline.steps[:-1], ("model", huge)])
    frame = _new_rows(3)
    with pytest.raises(InputError) as info:
        predictor.predict(_rows_for(toy, frame))
    assert info.value.status == 422
    assert any(p.loc[:2] == ("body", "rows") for p in info.value.problems)
