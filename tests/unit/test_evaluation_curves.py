"""Training curves of fitted models and learning curves over growing subsets."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fleetlearn.catalog import resolve_model
from fleetlearn.evaluation import learning_curve_points, training_curve


@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 4)) * [1, 10, 100, 1000]  # scales a pipeline must fix
    y = np.array(["cat", "dog", "eel"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 5)]
    return X[:120], y[:120], X[120:], y[120:]


@pytest.fixture(scope="module")
def numeric():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(160, 3))
    y = X @ np.array([2.0, -1.0, 0.5]) + rng.normal(scale=0.2, size=160)
    return X[:120], y[:120], X[120:], y[120:]


def _assert_curve(curve, kind, n_points):
    assert curve["kind"] == kind
    assert len(curve["x"]) == n_points
    assert len(curve["train"]) == n_points
    assert all(math.isfinite(v) for v in curve["train"])
    assert curve["x"] == sorted(set(curve["x"]))


def test_gradient_boosting_curve_subsamples_stages_and_ends_at_the_model(labelled):
    X, y, Xv, yv = labelled
    model = GradientBoostingClassifier(n_estimators=120, max_depth=2, random_state=0).fit(X, y)
    curve = training_curve(model, X, y, Xv, yv, "classification", "accuracy")
    _assert_curve(curve, "staged", 50)
    assert (curve["x_label"], curve["metric"]) == ("stage", "accuracy")
    assert (curve["x"][0], curve["x"][-1]) == (1, 120)
    assert len(curve["validation"]) == 50
    # The last point is the fitted model itself.
    assert curve["validation"][-1] == pytest.approx(skm.accuracy_score(yv, model.predict(Xv)))
    assert curve["train"][-1] == pytest.approx(skm.accuracy_score(y, model.predict(X)))


def test_loss_metric_curve_uses_probabilities(labelled):
    X, y, Xv, yv = labelled
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y)
    curve = training_curve(model, X, y, Xv, yv, "classification", "log_loss")
    _assert_curve(curve, "staged", 10)
    assert curve["validation"][-1] == pytest.approx(
        skm.log_loss(yv, model.predict_proba(Xv), labels=model.classes_))
    assert curve["train"][-1] < curve["train"][0]  # boosting lowers the training loss


def test_pipeline_preprocessing_is_applied_before_the_stages(numeric):
    X, y, Xv, yv = numeric
    pipeline = make_pipeline(StandardScaler(),
                             GradientBoostingRegressor(n_estimators=15, random_state=0))
    pipeline.fit(X, y)
    curve = training_curve(pipeline, X, y, Xv, yv, "regression", "rmse")
    _assert_curve(curve, "staged", 15)
    assert curve["validation"][-1] == pytest.approx(
        skm.root_mean_squared_error(yv, pipeline.predict(Xv)))


def test_hist_gradient_boosting_curve(labelled):
    X, y, Xv, yv = labelled
    model = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(
        max_iter=12, random_state=0)).fit(X, y)
    curve = training_curve(model, X, y, Xv, yv, "classification", "f1_macro")
    _assert_curve(curve, "staged", 12)
    assert all(0 <= v <= 1 for v in curve["validation"])


def test_xgboost_curve_scores_original_labels(labelled):
    pytest.importorskip("xgboost")
    X, y, Xv, yv = labelled
    spec = resolve_model("xgboost:n_estimators=8", "classification")
    model = make_pipeline(StandardScaler(), spec.build(0)).fit(X, y)
    curve = training_curve(model, X, y, Xv, yv, "classification", "accuracy")
    _assert_curve(curve, "staged", 8)
    assert curve["validation"][-1] == pytest.approx(skm.accuracy_score(yv, model.predict(Xv)))


def test_mlp_curve_is_its_loss_per_epoch(labelled, numeric):
    X, y, Xv, yv = labelled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(8,), max_iter=15, random_state=0)).fit(X, y)
        early = MLPRegressor(hidden_layer_sizes=(8,), max_iter=15, early_stopping=True,
                             n_iter_no_change=50, random_state=0).fit(*numeric[:2])
    curve = training_curve(model, X, y, Xv, yv, "classification", "accuracy")
    _assert_curve(curve, "loss_curve", 15)
    assert (curve["x_label"], curve["metric"], curve["validation"]) == ("epoch", "loss", None)
    assert curve["train"] == pytest.approx(model[-1].loss_curve_)
    curve = training_curve(early, *numeric, "regression", "r2")
    assert len(curve["validation"]) == len(curve["train"]) == 15
    assert curve["validation_metric"] == "r2"


def test_models_without_iterations_have_no_training_curve(labelled):
    X, y, Xv, yv = labelled
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    assert training_curve(forest, X, y, Xv, yv, "classification", "accuracy") is None
    logistic = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    assert training_curve(logistic, X, y, Xv, yv, "classification", "accuracy") is None


def test_learning_curve_grows_stratified_subsets(labelled):
    X, y, Xv, yv = labelled
    seen = []

    class Recording(GaussianNB):
        def fit(self, X, y):
            seen.append(sorted(set(y)))
            return super().fit(X, y)

    curve = learning_curve_points(Recording, X, y, Xv, yv, "classification", "accuracy")
    assert curve["kind"] == "learning_curve"
    assert (curve["x_label"], curve["metric"]) == ("training rows", "accuracy")
    assert curve["x"] == [12, 30, 60, 90, 120]
    assert len(curve["train"]) == len(curve["validation"]) == 5
    assert all(0 <= v <= 1 for v in curve["train"] + curve["validation"])
    assert all(classes == ["cat", "dog", "eel"] for classes in seen)  # every class, every fit


def test_learning_curve_is_deterministic_and_skips_too_small_fractions(labelled):
    X, y, Xv, yv = labelled
    subsets = []

    class Recording(GaussianNB):
        def fit(self, X, y):
            subsets.append(X[:, 0].tolist())
            return super().fit(X, y)

    def curve(seed):
        return learning_curve_points(Recording, X, y, Xv, yv, "classification",
                                     "balanced_accuracy", fractions=(0.01, 0.25, 1.0),
                                     random_state=seed)

    first = curve(3)
    assert first["x"] == [30, 120]  # 1 row cannot hold 3 classes
    assert curve(3) == first
    curve(4)
    assert subsets[0] == subsets[2]  # same seed, same rows
    assert subsets[0] != subsets[4]  # another seed draws another subset


def test_learning_curve_skips_sizes_the_model_refuses(numeric):
    X, y, Xv, yv = numeric
    curve = learning_curve_points(lambda: KNeighborsRegressor(n_neighbors=20),
                                  X, y, Xv, yv, "regression", "mae")
    assert curve["x"] == [30, 60, 90, 120]  # 12 rows < 20 neighbours
    assert curve["skipped"][0]["rows"] == 12
    assert all(v >= 0 for v in curve["validation"])


def test_learning_curve_raises_when_no_size_fits(numeric):
    X, y, Xv, yv = numeric
    with pytest.raises(ValueError, match="n_neighbors"):
        learning_curve_points(lambda: KNeighborsRegressor(n_neighbors=500),
                              X, y, Xv, yv, "regression", "mae")


def test_learning_curve_regression_scores_the_requested_metric(numeric):
    X, y, Xv, yv = numeric
    curve = learning_curve_points(Ridge, X, y, Xv, yv, "regression", "r2")
    assert curve["x"] == [12, 30, 60, 90, 120]
    final = Ridge().fit(X, y)
    assert curve["validation"][-1] == pytest.approx(skm.r2_score(yv, final.predict(Xv)))
