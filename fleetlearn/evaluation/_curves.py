"""Training curves (a metric per iteration of a fitted model) and learning curves."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from fleetlearn.evaluation._metrics import PROBA_METRICS, check_metric, metric_value, score_one

__all__ = ["training_curve", "learning_curve_points", "MAX_CURVE_POINTS"]

#: Curves are stored with every model; this many points draw a smooth line.
MAX_CURVE_POINTS = 50

_BOOSTER_ROOTS = ("xgboost", "lightgbm")


def _rows(X: Any, index: Any) -> Any:
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


def _unwrap(estimator: Any, X_train: Any, X_val: Any) -> tuple[Any, Any, Any, Any]:
    """Return (model, inner model, X_train, X_val) with the pipeline's preprocessing applied."""
    # Imported on use: the evaluation package's statistics are read by CLI verbs that
    # never fit, and scikit-learn costs about a second to import.
    from sklearn.pipeline import Pipeline

    from fleetlearn.catalog import LabelEncodedClassifier

    model = estimator
    if isinstance(estimator, Pipeline):
        model = estimator.steps[-1][1]
        if len(estimator.steps) > 1:
            preprocess = estimator[:-1]
            X_train, X_val = preprocess.transform(X_train), preprocess.transform(X_val)
    inner = model.estimator_ if isinstance(model, LabelEncodedClassifier) else model
    return model, inner, X_train, X_val


def _pick(n_stages: int, max_points: int = MAX_CURVE_POINTS) -> list[int]:
    """At most ``max_points`` stages from 1..n evenly, always the last one."""
    if n_stages <= max_points:
        return list(range(1, n_stages + 1))
    return sorted({int(round(s)) for s in np.linspace(1, n_stages, max_points)})


def _booster_rounds(inner: Any) -> int:
    if type(inner).__module__.startswith("xgboost"):
        return int(inner.get_booster().num_boosted_rounds())
    return int(inner.booster_.current_iteration())


def _booster_outputs(inner: Any, X: Any, stages: Sequence[int], proba: bool) -> Iterator[Any]:
    method = inner.predict_proba if proba else inner.predict
    for stage in stages:
        if type(inner).__module__.startswith("xgboost"):
            yield method(X, iteration_range=(0, stage))
        else:
            yield method(X, num_iteration=stage)


def _staged_outputs(inner: Any, X: Any, stages: Sequence[int], proba: bool) -> Iterator[Any]:
    wanted = set(stages)
    # The generators produce every stage; only the picked ones are scored.
    generator = inner.staged_predict_proba(X) if proba else inner.staged_predict(X)
    for stage, output in enumerate(generator, start=1):
        if stage in wanted:
            yield output


def _curve_values(outputs: Iterator[Any], y: Any, task: str, metric: str, proba: bool,
                  classes: Any) -> list[float | None]:
    values = []
    for output in outputs:
        if proba:
            y_pred = np.asarray(classes)[np.argmax(output, axis=1)]
            values.append(metric_value(metric, task, y, y_pred, output, classes))
        else:
            values.append(metric_value(metric, task, y, output))
    return values


def training_curve(
    estimator: Any,
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    task: str,
    metric: str,
) -> dict[str, Any] | None:
    """A metric per training iteration of an already fitted model.

    Parameters
    ----------
    estimator : fitted estimator or Pipeline
        A pipeline's steps before the last are applied to ``X_train``/``X_val``
        first.
    X_train, y_train, X_val, y_val
        Rows the model was trained on, and held-out rows.
    task, metric : str

    Returns
    -------
    dict or None
        - boosting with stages (GradientBoosting, AdaBoost, HistGradientBoosting,
          XGBoost, LightGBM): ``{"kind": "staged", "x_label": "stage", "x": [...],
          "train": [...], "validation": [...], "metric": metric}``, at most
          ``MAX_CURVE_POINTS`` evenly spaced stages; a value is None where the
          metric is undefined;
        - MLP: ``{"kind": "loss_curve", "x_label": "epoch", "x": [...], "train":
          loss per epoch, "validation": validation_scores_ or None, "metric":
          "loss"}`` (plus ``"validation_metric"`` when there are validation scores);
        - XGBoost/LightGBM whose per-round prediction fails but who recorded
          ``evals_result_``: ``{"kind": "evals_result", ...}``;
        - None for models with none of these (use :func:`learning_curve_points`).

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.ensemble import GradientBoostingClassifier
    >>> X, y = make_classification(200, random_state=0)
    >>> model = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y)
    >>> curve = training_curve(model, X, y, X, y, "classification", "accuracy")
    >>> curve["kind"], len(curve["x"])
    ('staged', 20)
    """
    metric = check_metric(metric, task)
    model, inner, Xt, Xv = _unwrap(estimator, X_train, X_val)
    classes = getattr(model, "classes_", None)
    wrapped = inner is not model
    booster = type(inner).__module__.split(".")[0] in _BOOSTER_ROOTS

    if booster or hasattr(inner, "staged_predict"):
        # Classifiers are scored from probabilities: argmax over classes_ gives the
        # original labels even when the inner model saw encoded ones.
        proba = task == "classification" and (
            booster or hasattr(inner, "staged_predict_proba")
        )
        # Without staged probabilities there is no loss to score, and a wrapped model's
        # staged labels are the encoded ones.
        if task == "classification" and not proba and (wrapped or metric in PROBA_METRICS):
            return None
        try:
            if booster:
                stages = _pick(_booster_rounds(inner))
                outputs = _booster_outputs
            else:
                stages = _pick(sum(1 for _ in inner.staged_predict(_rows(Xt, slice(0, 1)))))
                outputs = _staged_outputs
            train = _curve_values(outputs(inner, Xt, stages, proba), y_train, task, metric,
                                  proba, classes)
            validation = _curve_values(outputs(inner, Xv, stages, proba), y_val, task,
                                       metric, proba, classes)
        except (AttributeError, TypeError, ValueError):
            if booster:
                return _evals_result_curve(inner)
            raise
        return {"kind": "staged", "x_label": "stage", "x": stages, "train": train,
                "validation": validation, "metric": metric}

    loss_curve = getattr(inner, "loss_curve_", None)
    if loss_curve is not None:
        curve: dict[str, Any] = {
            "kind": "loss_curve",
            "x_label": "epoch",
            "x": list(range(1, len(loss_curve) + 1)),
            "train": [float(v) for v in loss_curve],
            "validation": None,
            "metric": "loss",
        }
        scores = getattr(inner, "validation_scores_", None)
        if scores is not None:
            curve["validation"] = [float(v) for v in scores]
            curve["validation_metric"] = "accuracy" if task == "classification" else "r2"
        return curve
    return None


def _evals_result_curve(inner: Any) -> dict[str, Any] | None:
    results = getattr(inner, "evals_result_", None)
    if not results:
        return None
    sets = list(results.values())
    name, train = next(iter(sets[0].items()))
    validation = list(sets[1].get(name, [])) if len(sets) > 1 else None
    stages = _pick(len(train))
    return {
        "kind": "evals_result",
        "x_label": "stage",
        "x": stages,
        "train": [float(train[s - 1]) for s in stages],
        "validation": [float(validation[s - 1]) for s in stages] if validation else None,
        "metric": str(name),
    }


def _growth_order(y: np.ndarray, task: str, random_state: int | None) -> np.ndarray:
    """Row order whose every prefix is a (nearly) stratified sample of ``y``.

    For classification each class is shuffled and its rows ranked by their position
    in that class (0 for the first row of every class), so the first K rows hold
    one row of each of the K classes and longer prefixes keep the class shares.
    """
    rng = np.random.default_rng(random_state)
    if task != "classification":
        return rng.permutation(len(y))
    ranks = np.empty(len(y))
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        ranks[rows] = np.arange(len(rows)) / len(rows)
    return np.lexsort((rng.random(len(y)), ranks))


def learning_curve_points(
    make_estimator: Callable[[], Any],
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    task: str,
    metric: str,
    fractions: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 1.0),
    random_state: int | None = 0,
) -> dict[str, Any]:
    """Fit fresh estimators on growing subsets of the training rows and score them.

    Subsets are nested prefixes of one shuffled order, stratified for
    classification so that every class is present whenever the subset can hold
    them all; fractions too small for that are skipped, and so are sizes at which
    the estimator refuses to fit or predict (``ValueError``, e.g. fewer rows than
    ``n_neighbors``), listed under ``"skipped"``.

    Returns
    -------
    dict
        ``{"kind": "learning_curve", "x_label": "training rows", "x": [rows...],
        "train": [...], "validation": [...], "metric": metric, "skipped": [...]}``;
        ``x`` is strictly increasing.

    Raises
    ------
    ValueError
        When no subset could be fitted at all (the last fit's error).

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from sklearn.linear_model import Ridge
    >>> X, y = make_regression(100, 3, random_state=0)
    >>> curve = learning_curve_points(Ridge, X[:80], y[:80], X[80:], y[80:], "regression", "r2")
    >>> curve["x"]
    [8, 20, 40, 60, 80]
    """
    metric = check_metric(metric, task)
    y_train = np.asarray(y_train)
    n_rows = len(y_train)
    order = _growth_order(y_train, task, random_state)
    n_classes = len(np.unique(y_train)) if task == "classification" else 1
    sizes = sorted({max(1, int(round(f * n_rows))) for f in fractions if 0 < f <= 1})
    sizes = [s for s in sizes if s >= n_classes]
    curve: dict[str, Any] = {"kind": "learning_curve", "x_label": "training rows", "x": [],
                             "train": [], "validation": [], "metric": metric, "skipped": []}
    last_error: ValueError | None = None
    for size in sizes:
        rows = np.sort(order[:size])
        X_part, y_part = _rows(X_train, rows), y_train[rows]
        try:
            estimator = make_estimator().fit(X_part, y_part)
            train_score = score_one(estimator, X_part, y_part, task, metric)
            val_score = score_one(estimator, X_val, y_val, task, metric)
        except ValueError as exc:
            last_error = exc
            curve["skipped"].append({"rows": size, "error": f"{type(exc).__name__}: {exc}"})
            continue
        curve["x"].append(size)
        curve["train"].append(train_score)
        curve["validation"].append(val_score)
    if not curve["x"] and last_error is not None:
        raise last_error
    return curve
