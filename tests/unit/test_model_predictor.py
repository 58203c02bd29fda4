"""fleetlearn.model.Predictor: the compiled fast path answers exactly as the pipeline, and
values the model cannot handle are input errors."""

from __future__ import annotations

import numpy as np
import pytest
from model_fixtures import fit, mixed_frame, records_of, rows_for, unseen_rows
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fleetlearn.data import Dataset, InputError, coerce_frame, dataset_from_frame, parse_rows
from fleetlearn.model import Predictor


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


def _check_same_as_pipeline(pipeline: Pipeline, ds: Dataset, proba: bool) -> Predictor:
    frame = unseen_rows()
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
    frame = unseen_rows().drop(columns=["label"])
    predictor = Predictor(pipeline, toy_regression.schema)
    assert predictor.compiled, predictor.compiled_reason
    assert not predictor.has_proba
    got = predictor.predict(rows_for(toy_regression, frame), proba=True)
    assert got.proba is None  # a regressor has no probabilities, even when asked
    want = pipeline.predict(coerce_frame(frame, toy_regression.schema))
    np.testing.assert_allclose(got.labels, want, rtol=1e-12, atol=1e-12)


def test_predictions_are_plain_json_values(toy: Dataset) -> None:
    predictor = Predictor(fit(toy, "logistic_regression"), toy.schema)
    out = predictor.predict(rows_for(toy, unseen_rows(3)), proba=True)
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


def test_unknown_pipeline_shape_is_served_by_the_plain_pipeline(toy: Dataset) -> None:
    base = fit(toy, "logistic_regression")
    pipeline = Pipeline([("preprocess", base.steps[0][1]), ("clip", _Clip()),
                         ("model", LogisticRegression().fit(
                             _Clip().transform(base.steps[0][1].transform(toy.X)), toy.y))])
    predictor = Predictor(pipeline, toy.schema)
    assert not predictor.compiled
    frame = unseen_rows()
    got = predictor.predict(rows_for(toy, frame), proba=True)
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
    frame = unseen_rows()
    got = predictor.predict(rows_for(toy, frame))
    assert got.labels == pipeline.predict(coerce_frame(frame, toy.schema)).tolist()


def test_values_the_model_cannot_handle_are_an_input_error(toy: Dataset) -> None:
    """1e308 is valid JSON and a finite number, but overflows scaling: a 422, not a 500."""
    for model in ("logistic_regression", "random_forest:n_estimators=5"):
        predictor = Predictor(fit(toy, model), toy.schema)
        frame = unseen_rows(3)
        frame["x"] = [1.0, 1.7e308, -1e300]
        with pytest.raises(InputError) as info:
            predictor.predict(rows_for(toy, frame))
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
    features = predictor.features(rows_for(toy, unseen_rows(3)))
    huge = LinearRegression().fit(features[:2], [0.0, 1.0])
    huge.coef_ = np.full_like(huge.coef_, 1e308)
    predictor.estimator = huge
    predictor.pipeline = Pipeline([*predictor.pipeline.steps[:-1], ("model", huge)])
    frame = unseen_rows(3)
    with pytest.raises(InputError) as info:
        predictor.predict(rows_for(toy, frame))
    assert info.value.status == 422
    assert any(p.loc[:2] == ("body", "rows") for p in info.value.problems)
