"""Metrics: names, directions, and values checked against scikit-learn itself."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from fleetlearn.errors import ConfigError
from fleetlearn.evaluation import (
    CLASSIFICATION_METRICS,
    PRIMARY_METRIC,
    REGRESSION_METRICS,
    check_metric,
    compute_metrics,
    greater_is_better,
    score_predictions,
)


def _label_metrics(y_true, y_pred):
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
        "precision_macro": skm.precision_score(y_true, y_pred, average="macro",
                                               zero_division=0),
        "recall_macro": skm.recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_macro": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_weighted": skm.f1_score(y_true, y_pred, average="weighted", zero_division=0),
        "precision_weighted": skm.precision_score(y_true, y_pred, average="weighted",
                                                  zero_division=0),
        "recall_weighted": skm.recall_score(y_true, y_pred, average="weighted",
                                            zero_division=0),
    }


def _assert_matches(got, expected):
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12), name
        assert type(got[name]) is float, name


@pytest.fixture
def binary():
    y_true = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    proba1 = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.2, 0.7, 0.3])
    proba = np.column_stack([1 - proba1, proba1])
    return y_true, (proba1 > 0.5).astype(int), proba


@pytest.fixture
def multiclass():
    y_true = np.array(["a", "b", "c", "a", "b", "c", "a", "c", "b"])
    proba = np.array([
        [0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4],
        [0.2, 0.2, 0.6], [0.5, 0.1, 0.4], [0.3, 0.4, 0.3], [0.1, 0.8, 0.1],
    ])
    classes = np.array(["a", "b", "c"])
    return y_true, classes[proba.argmax(axis=1)], proba, classes


def test_metric_names_and_primary_metrics():
    assert CLASSIFICATION_METRICS == (
        "accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
        "f1_weighted", "precision_weighted", "recall_weighted", "roc_auc", "log_loss")
    assert REGRESSION_METRICS == ("r2", "rmse", "mae", "mape")
    assert PRIMARY_METRIC == {"classification": "accuracy", "regression": "r2"}


def test_binary_metrics_equal_sklearn(binary):
    y_true, y_pred, proba = binary
    got = compute_metrics("classification", y_true, y_pred, proba, classes=[0, 1])
    expected = _label_metrics(y_true, y_pred)
    expected["roc_auc"] = skm.roc_auc_score(y_true, proba[:, 1])
    expected["log_loss"] = skm.log_loss(y_true, proba)
    _assert_matches(got, expected)


def test_binary_string_labels_score_the_second_class_as_positive(binary):
    codes, pred_codes, proba = binary
    names = np.array(["no", "yes"])
    y_true, y_pred = names[codes], names[pred_codes]
    got = compute_metrics("classification", y_true, y_pred, proba, classes=names)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true == "yes", proba[:, 1]))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_true, proba, labels=names))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))


def test_multiclass_metrics_equal_sklearn(multiclass):
    y_true, y_pred, proba, classes = multiclass
    got = compute_metrics("classification", y_true, y_pred, proba, classes=classes)
    expected = _label_metrics(y_true, y_pred)
    expected["roc_auc"] = skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro",
                                            labels=classes)
    expected["log_loss"] = skm.log_loss(y_true, proba, labels=classes)
    _assert_matches(got, expected)


def test_split_missing_a_class_still_scores(multiclass):
    y_true, y_pred, proba, classes = multiclass
    keep = y_true != "b"  # this validation fold holds no "b"
    got = compute_metrics("classification", y_true[keep], y_pred[keep], proba[keep],
                          classes=classes)
    # One-vs-rest over the classes the fold holds.
    per_class = [skm.roc_auc_score(y_true[keep] == c, proba[keep][:, i])
                 for i, c in enumerate(classes) if c != "b"]
    assert got["roc_auc"] == pytest.approx(np.mean(per_class))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_true[keep], proba[keep],
                                                         labels=classes))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true[keep], y_pred[keep]))


def test_one_class_in_the_split_leaves_roc_auc_out(binary):
    y_true, y_pred, proba = binary
    ones = y_true == 1
    got = compute_metrics("classification", y_true[ones], y_pred[ones], proba[ones],
                          classes=[0, 1])
    assert "roc_auc" not in got
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true[ones], y_pred[ones]))
    assert "log_loss" in got


def test_without_probabilities_only_label_metrics(multiclass):
    y_true, y_pred, _, _ = multiclass
    got = compute_metrics("classification", y_true, y_pred)
    assert set(got) == set(CLASSIFICATION_METRICS) - {"roc_auc", "log_loss"}


def test_decision_scores_give_roc_auc_but_not_log_loss(binary):
    y_true, y_pred, proba = binary
    scores = proba[:, 1] * 10 - 5  # any monotone score ranks rows the same
    got = compute_metrics("classification", y_true, y_pred, classes=[0, 1], y_score=scores)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, proba[:, 1]))
    assert "log_loss" not in got


def test_float32_probabilities_that_do_not_quite_sum_to_one(multiclass):
    y_true, y_pred, proba, classes = multiclass
    rough = (proba * 1.0001).astype(np.float32)
    got = compute_metrics("classification", y_true, y_pred, rough, classes=classes)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_true, proba, labels=classes),
                                            rel=1e-4)


def test_classes_default_to_sorted_labels_when_probabilities_are_given(binary):
    y_true, y_pred, proba = binary
    got = compute_metrics("classification", y_true, y_pred, proba)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, proba[:, 1]))


def test_regression_metrics_equal_sklearn():
    y_true = np.array([3.0, -0.5, 2.0, 7.0, 4.2])
    y_pred = np.array([2.5, 0.0, 2.1, 7.8, 3.9])
    got = compute_metrics("regression", y_true, y_pred)
    _assert_matches(got, {
        "r2": skm.r2_score(y_true, y_pred),
        "rmse": skm.root_mean_squared_error(y_true, y_pred),
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "mape": skm.mean_absolute_percentage_error(y_true, y_pred),
    })


def test_uncomputable_metrics_are_left_out_not_raised():
    # A diverged model predicting NaN, and a single row for r2.
    assert compute_metrics("regression", [1.0, 2.0], [np.nan, 1.0]) == {}
    assert "r2" not in compute_metrics("regression", [1.0], [2.0])


def test_length_mismatch_is_a_caller_bug():
    with pytest.raises(ValueError, match="y_true has 3 rows but y_pred has 2"):
        compute_metrics("regression", [1.0, 2.0, 3.0], [1.0, 2.0])


@pytest.mark.parametrize(("metric", "higher"), [
    ("accuracy", True), ("roc_auc", True), ("f1_macro", True), ("r2", True),
    ("log_loss", False), ("rmse", False), ("mae", False), ("mape", False),
])
def test_greater_is_better(metric, higher):
    assert greater_is_better(metric) is higher


def test_greater_is_better_refuses_unknown_metrics():
    with pytest.raises(ConfigError, match="unknown metric 'rsme'.*Did you mean 'rmse'"):
        greater_is_better("rsme")


@pytest.mark.parametrize(("given", "task", "canonical"), [
    ("accuracy", "classification", "accuracy"),
    ("F1", "classification", "f1_macro"),
    ("auc", "classification", "roc_auc"),
    ("log-loss", "classification", "log_loss"),
    ("RMSE", "regression", "rmse"),
])
def test_check_metric_returns_the_canonical_name(given, task, canonical):
    assert check_metric(given, task) == canonical


def test_check_metric_suggests_close_names():
    with pytest.raises(ConfigError) as info:
        check_metric("acuracy", "classification")
    message = str(info.value)
    assert "unknown metric 'acuracy'" in message
    assert "Did you mean 'accuracy'?" in message
    assert "balanced_accuracy" in message  # lists the valid ones


def test_check_metric_names_the_task_of_a_wrong_task_metric():
    with pytest.raises(ConfigError) as info:
        check_metric("rmse", "classification")
    assert "'rmse' is a regression metric" in str(info.value)
    assert "accuracy" in str(info.value)
    with pytest.raises(ConfigError, match="'roc_auc' is a classification metric"):
        check_metric("roc_auc", "regression")


def test_score_predictions_on_a_fitted_pipeline():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = np.where(X[:, 0] > 0, "pos", "neg")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[:60], y[:60])
    scores, per_row = score_predictions(model, X[60:], y[60:], "classification")
    assert set(scores) == set(CLASSIFICATION_METRICS)
    proba = model.predict_proba(X[60:])
    assert scores["roc_auc"] == pytest.approx(skm.roc_auc_score(y[60:] == "pos", proba[:, 1]))
    assert 0 < per_row < 1


def test_score_predictions_uses_decision_function_without_predict_proba():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] + rng.normal(scale=0.5, size=60) > 0).astype(int)
    model = LinearSVC().fit(X, y)
    scores, _ = score_predictions(model, X, y, "classification")
    assert scores["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, model.decision_function(X)))
    assert "log_loss" not in scores
