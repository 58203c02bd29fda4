"""Metrics: names, directions, and computing them from predictions."""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
from sklearn import metrics as skm

from fleetlearn.errors import ConfigError, did_you_mean

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "PRIMARY_METRIC",
    "PROBA_METRICS",
    "greater_is_better",
    "metric_range",
    "check_metric",
    "compute_metrics",
    "metric_value",
    "score_predictions",
    "score_one",
]

CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "f1_weighted",
    "precision_weighted",
    "recall_weighted",
    "roc_auc",
    "log_loss",
)
REGRESSION_METRICS = ("r2", "rmse", "mae", "mape")

#: The metric a leaderboard ranks by when the user names none.
PRIMARY_METRIC = {"classification": "accuracy", "regression": "r2"}

#: Metrics that need class probabilities (or, for roc_auc, decision scores).
PROBA_METRICS = frozenset({"roc_auc", "log_loss"})

_METRICS = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}
_LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape"})
# Names people type for the same thing.
_ALIASES = {
    "acc": "accuracy",
    "f1": "f1_macro",
    "precision": "precision_macro",
    "recall": "recall_macro",
    "auc": "roc_auc",
    "roc": "roc_auc",
    "logloss": "log_loss",
    "cross_entropy": "log_loss",
    "r2_score": "r2",
}


def _normalise(metric: str) -> str:
    name = str(metric).strip().lower().replace("-", "_").replace(" ", "_")
    return _ALIASES.get(name, name)


def greater_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (False for losses and errors).

    Examples
    --------
    >>> greater_is_better("r2"), greater_is_better("rmse")
    (True, False)
    """
    name = _normalise(metric)
    if name not in CLASSIFICATION_METRICS and name not in REGRESSION_METRICS:
        known = CLASSIFICATION_METRICS + REGRESSION_METRICS
        raise ConfigError(
            f"unknown metric '{metric}'.{did_you_mean(name, known)} Known metrics: "
            f"{', '.join(known)}."
        )
    return name not in _LOWER_IS_BETTER


#: Metrics whose values lie in [0, 1]; r2 is at most 1; the errors and losses at least 0.
_UNIT_RANGE = frozenset(CLASSIFICATION_METRICS) - {"log_loss"}


def metric_range(metric: str) -> tuple[float, float]:
    """The values ``metric`` can take: ``(low, high)``, infinite where unbounded.

    A confidence interval of fold scores is clipped to it (an accuracy of 1.01 cannot
    happen, whatever a t interval says).

    Examples
    --------
    >>> metric_range("accuracy"), metric_range("r2"), metric_range("rmse")
    ((0.0, 1.0), (-inf, 1.0), (0.0, inf))
    """
    name = _normalise(metric)
    greater_is_better(name)  # unknown metric: ConfigError
    if name in _UNIT_RANGE:
        return 0.0, 1.0
    if name == "r2":
        return -math.inf, 1.0
    return 0.0, math.inf


def check_metric(metric: str, task: str) -> str:
    """Return the canonical name of ``metric`` if it applies to ``task``.

    Raises
    ------
    ConfigError
        Unknown metric (with a suggestion) or a metric of the other task.

    Examples
    --------
    >>> check_metric("F1", "classification")
    'f1_macro'
    """
    if task not in _METRICS:
        raise ConfigError(f"unknown task {task!r}: expected 'classification' or 'regression'.")
    name = _normalise(metric)
    allowed = _METRICS[task]
    if name in allowed:
        return name
    other = "regression" if task == "classification" else "classification"
    if name in _METRICS[other]:
        raise ConfigError(
            f"metric '{metric}' is a {other} metric, but this is a {task} task. "
            f"{task.capitalize()} metrics: {', '.join(allowed)}."
        )
    raise ConfigError(
        f"unknown metric '{metric}' for a {task} task.{did_you_mean(name, allowed)} "
        f"{task.capitalize()} metrics: {', '.join(allowed)}."
    )


def _roc_auc(y_true: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> float | None:
    if scores.ndim == 1 or scores.shape[1] == 1:  # binary decision_function
        if len(classes) != 2:
            return None
        scores = np.column_stack([-scores.ravel(), scores.ravel()])
    if scores.shape[1] != len(classes):
        return None
    if len(classes) == 2:
        positive = y_true == classes[1]
        if positive.all() or not positive.any():  # one class in this split: undefined
            return None
        return skm.roc_auc_score(positive, scores[:, 1])
    # One-vs-rest macro average over the classes present in y_true; equal to sklearn's
    # multi_class="ovr" when all are present, and defined when a split misses one.
    per_class = []
    for i, label in enumerate(classes):
        positive = y_true == label
        if positive.any() and not positive.all():
            per_class.append(skm.roc_auc_score(positive, scores[:, i]))
    return float(np.mean(per_class)) if per_class else None


def _log_loss(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float | None:
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        return None
    proba = np.clip(proba.astype(float), 0.0, None)
    sums = proba.sum(axis=1, keepdims=True)
    if np.any(sums <= 0):
        return None
    # float32 probabilities (XGBoost) sum to 1 only approximately; sklearn insists.
    return skm.log_loss(y_true, proba / sums, labels=list(classes))


def metric_value(
    metric: str,
    task: str,
    y_true: Any,
    y_pred: Any,
    y_proba: Any = None,
    classes: Any = None,
    y_score: Any = None,
) -> float | None:
    """One metric as a float, or None when it cannot be computed on these inputs.

    Takes the same inputs as :func:`compute_metrics` (``metric`` must be canonical).

    Examples
    --------
    >>> metric_value("mae", "regression", [1.0, 2.0], [1.5, 2.5])
    0.5
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    try:
        with warnings.catch_warnings():
            # Undefined precision, a class missing from y_true...: the value we return
            # (or its absence) already says so.
            warnings.simplefilter("ignore")
            value = _compute(metric, task, y_true, y_pred, y_proba, classes, y_score)
    except (ValueError, TypeError, IndexError):
        return None
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _compute(metric: str, task: str, y_true: np.ndarray, y_pred: np.ndarray, y_proba: Any,
             classes: Any, y_score: Any) -> float | None:
    if task == "regression":
        if metric == "r2":
            return skm.r2_score(y_true, y_pred) if len(y_true) >= 2 else None
        if metric == "rmse":
            return skm.root_mean_squared_error(y_true, y_pred)
        if metric == "mae":
            return skm.mean_absolute_error(y_true, y_pred)
        if metric == "mape":
            return skm.mean_absolute_percentage_error(y_true, y_pred)
        raise ValueError(metric)
    if metric == "accuracy":
        return skm.accuracy_score(y_true, y_pred)
    if metric == "balanced_accuracy":
        return skm.balanced_accuracy_score(y_true, y_pred)
    if metric in ("precision_macro", "recall_macro", "f1_macro", "precision_weighted",
                  "recall_weighted", "f1_weighted"):
        kind, average = metric.split("_")
        score = {"precision": skm.precision_score, "recall": skm.recall_score,
                 "f1": skm.f1_score}[kind]
        return score(y_true, y_pred, average=average, zero_division=0)
    if classes is None:
        return None
    classes = np.asarray(classes)
    if metric == "roc_auc":
        scores = y_proba if y_proba is not None else y_score
        if scores is None:
            return None
        return _roc_auc(y_true, np.asarray(scores, dtype=float), classes)
    if metric == "log_loss":
        if y_proba is None:
            return None
        return _log_loss(y_true, np.asarray(y_proba), classes)
    raise ValueError(metric)


def compute_metrics(
    task: str,
    y_true: Any,
    y_pred: Any,
    y_proba: Any = None,
    classes: Any = None,
    y_score: Any = None,
) -> dict[str, float]:
    """Every metric of ``task`` that can be computed from these predictions.

    Parameters
    ----------
    task : {"classification", "regression"}
    y_true, y_pred : array-like of shape (n,)
    y_proba : array-like of shape (n, n_classes), optional
        Class probabilities, columns in the order of ``classes``; enables
        ``roc_auc`` and ``log_loss``.
    classes : array-like of shape (n_classes,), optional
        The fitted estimator's ``classes_``; needed with ``y_proba``/``y_score``.
    y_score : array-like of shape (n,) or (n, n_classes), optional
        ``decision_function`` output, used for ``roc_auc`` when there is no
        ``y_proba``.

    Returns
    -------
    dict of str to float
        Plain floats. A metric that cannot be computed (``roc_auc`` with one class
        in ``y_true``, probabilities missing) is left out; this never raises on
        valid predictions. Binary ``roc_auc`` scores ``classes[1]`` as positive;
        multiclass is one-vs-rest macro over the classes present in ``y_true``.

    Examples
    --------
    >>> compute_metrics("regression", [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])["mae"]
    0.3333333333333333
    """
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true has {len(y_true)} rows but y_pred has {len(y_pred)}: they must match."
        )
    names = _METRICS.get(task)
    if names is None:
        raise ConfigError(f"unknown task {task!r}: expected 'classification' or 'regression'.")
    if task == "classification" and classes is None and y_proba is not None:
        # Estimators order probability columns by sorted label, as np.unique does.
        classes = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]))
    out = {}
    for name in names:
        value = metric_value(name, task, y_true, y_pred, y_proba, classes, y_score)
        if value is not None:
            out[name] = value
    return out


def score_predictions(
    estimator: Any, X: Any, y_true: Any, task: str
) -> tuple[dict[str, float], float]:
    """Predict ``X`` with a fitted estimator and score the predictions.

    Uses ``predict_proba`` when the estimator has it (else ``decision_function``
    for ``roc_auc``).

    Returns
    -------
    metrics : dict of str to float
        As :func:`compute_metrics`.
    predict_seconds_per_row : float
        Wall time of ``predict`` (including any pipeline preprocessing) per row.

    Examples
    --------
    >>> from sklearn.dummy import DummyRegressor
    >>> model = DummyRegressor().fit([[0], [1]], [1.0, 3.0])
    >>> score_predictions(model, [[0], [1]], [1.0, 3.0], "regression")[0]["mae"]
    1.0
    """
    start = time.perf_counter()
    y_pred = estimator.predict(X)
    per_row = (time.perf_counter() - start) / max(len(y_pred), 1)
    y_proba, y_score, classes = _scores(estimator, X, task)
    return compute_metrics(task, y_true, y_pred, y_proba, classes, y_score), per_row


def _scores(estimator: Any, X: Any, task: str) -> tuple[Any, Any, Any]:
    """(probabilities, decision scores, classes) of a fitted classifier, where it has them."""
    if task != "classification":
        return None, None, None
    classes = getattr(estimator, "classes_", None)
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(X), None, classes
    if hasattr(estimator, "decision_function"):
        return None, estimator.decision_function(X), classes
    return None, None, classes


def score_one(estimator: Any, X: Any, y_true: Any, task: str, metric: str) -> float | None:
    """One (canonical) metric of a fitted estimator on ``X``; None when undefined."""
    y_pred = estimator.predict(X)
    y_proba = y_score = classes = None
    if metric in PROBA_METRICS:
        y_proba, y_score, classes = _scores(estimator, X, task)
    return metric_value(metric, task, y_true, y_pred, y_proba, classes, y_score)

