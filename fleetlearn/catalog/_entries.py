"""The model catalog: short names, their estimators, default parameters and traits."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from fleetlearn.catalog._spec import TASKS, check_task

__all__ = [
    "CatalogEntry",
    "CATALOG",
    "CLASSIFICATION_DEFAULTS",
    "REGRESSION_DEFAULTS",
    "DEFAULTS",
    "EXTRAS",
    "extra_available",
    "catalog_entries",
]

#: Optional extras: importable module -> pip extra of fleetlearn.
EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm"}


@dataclass(frozen=True)
class CatalogEntry:
    """One short name of the catalog for one task (traits are those of ModelSpec)."""

    name: str
    estimator_path: str
    params: dict[str, Any] = field(default_factory=dict)
    needs_scaling: bool = False
    quadratic: bool = False
    iterative: str | None = None
    extra: str | None = None
    wrapper: str | None = None


def _entries(*entries: CatalogEntry) -> dict[str, CatalogEntry]:
    return {e.name: e for e in entries}


# Defaults are chosen to finish in minutes on a 50,000-row, 30-feature table on two
# cores, and to be deterministic once random_state is set.
CATALOG: dict[str, dict[str, CatalogEntry]] = {
    "classification": _entries(
        CatalogEntry("logistic_regression", "sklearn.linear_model.LogisticRegression",
                     {"max_iter": 1000}, needs_scaling=True),
        CatalogEntry("random_forest", "sklearn.ensemble.RandomForestClassifier",
                     {"n_estimators": 100}),
        CatalogEntry("extra_trees", "sklearn.ensemble.ExtraTreesClassifier",
                     {"n_estimators": 100}),
        CatalogEntry("gradient_boosting", "sklearn.ensemble.GradientBoostingClassifier",
                     {"n_estimators": 100}, iterative="staged"),
        CatalogEntry("hist_gradient_boosting",
                     "sklearn.ensemble.HistGradientBoostingClassifier", iterative="staged"),
        CatalogEntry("svm", "sklearn.svm.SVC", needs_scaling=True, quadratic=True,
                     wrapper="calibrated"),
        CatalogEntry("knn", "sklearn.neighbors.KNeighborsClassifier", needs_scaling=True,
                     quadratic=True),
        CatalogEntry("naive_bayes", "sklearn.naive_bayes.GaussianNB"),
        CatalogEntry("decision_tree", "sklearn.tree.DecisionTreeClassifier"),
        CatalogEntry("mlp", "sklearn.neural_network.MLPClassifier",
                     {"hidden_layer_sizes": [64], "max_iter": 300, "early_stopping": False},
                     needs_scaling=True, iterative="loss_curve"),
        CatalogEntry("sgd", "sklearn.linear_model.SGDClassifier", {"loss": "log_loss"},
                     needs_scaling=True),
        CatalogEntry("ada_boost", "sklearn.ensemble.AdaBoostClassifier", iterative="staged"),
        CatalogEntry("xgboost", "xgboost.XGBClassifier", {"n_estimators": 100},
                     iterative="evals_result", extra="xgboost", wrapper="label_encoded"),
        CatalogEntry("lightgbm", "lightgbm.LGBMClassifier",
                     {"n_estimators": 100, "verbose": -1},
                     iterative="evals_result", extra="lightgbm"),
    ),
    "regression": _entries(
        CatalogEntry("linear_regression", "sklearn.linear_model.LinearRegression",
                     needs_scaling=True),
        CatalogEntry("ridge", "sklearn.linear_model.Ridge", needs_scaling=True),
        CatalogEntry("lasso", "sklearn.linear_model.Lasso", {"max_iter": 5000},
                     needs_scaling=True),
        CatalogEntry("elastic_net", "sklearn.linear_model.ElasticNet", {"max_iter": 5000},
                     needs_scaling=True),
        # A third of the features per split (Breiman's choice for regression) instead of
        # all of them: about 3x faster on wide tables, usually as accurate.
        CatalogEntry("random_forest", "sklearn.ensemble.RandomForestRegressor",
                     {"n_estimators": 100, "max_features": 0.33}),
        CatalogEntry("extra_trees", "sklearn.ensemble.ExtraTreesRegressor",
                     {"n_estimators": 100}),
        CatalogEntry("gradient_boosting", "sklearn.ensemble.GradientBoostingRegressor",
                     {"n_estimators": 100}, iterative="staged"),
        CatalogEntry("hist_gradient_boosting",
                     "sklearn.ensemble.HistGradientBoostingRegressor", iterative="staged"),
        CatalogEntry("knn", "sklearn.neighbors.KNeighborsRegressor", needs_scaling=True,
                     quadratic=True),
        CatalogEntry("svr", "sklearn.svm.SVR", needs_scaling=True, quadratic=True),
        CatalogEntry("decision_tree", "sklearn.tree.DecisionTreeRegressor"),
        CatalogEntry("mlp", "sklearn.neural_network.MLPRegressor",
                     {"hidden_layer_sizes": [64], "max_iter": 300, "early_stopping": False},
                     needs_scaling=True, iterative="loss_curve"),
        CatalogEntry("sgd", "sklearn.linear_model.SGDRegressor", needs_scaling=True),
        CatalogEntry("xgboost", "xgboost.XGBRegressor", {"n_estimators": 100},
                     iterative="evals_result", extra="xgboost"),
        CatalogEntry("lightgbm", "lightgbm.LGBMRegressor",
                     {"n_estimators": 100, "verbose": -1},
                     iterative="evals_result", extra="lightgbm"),
    ),
}

CLASSIFICATION_DEFAULTS = [
    "logistic_regression",
    "random_forest",
    "extra_trees",
    "hist_gradient_boosting",
    "gradient_boosting",
    "knn",
    "svm",
    "naive_bayes",
    "decision_tree",
]
REGRESSION_DEFAULTS = [
    "ridge",
    "lasso",
    "elastic_net",
    "random_forest",
    "extra_trees",
    "hist_gradient_boosting",
    "gradient_boosting",
    "knn",
    "svr",
]
DEFAULTS = {"classification": CLASSIFICATION_DEFAULTS, "regression": REGRESSION_DEFAULTS}


def extra_available(extra: str) -> bool:
    """Whether the module of an optional extra imports (not merely is on disk)."""
    try:
        importlib.import_module(extra)
    except Exception:  # noqa: BLE001 - ImportError, or OSError from a missing libgomp
        return False
    return True


def catalog_entries(task: str | None = None) -> list[dict[str, Any]]:
    """Rows describing the catalog, for ``fleetlearn catalog``.

    Parameters
    ----------
    task : {"classification", "regression"}, optional
        Only this task's models; both tasks by default.

    Returns
    -------
    list of dict
        One row per (task, name): ``name, task, estimator_path, params,
        in_default_set, quadratic, needs_scaling, iterative, available, extra``.

    Examples
    --------
    >>> rows = catalog_entries("regression")
    >>> next(r for r in rows if r["name"] == "ridge")["in_default_set"]
    True
    """
    tasks = TASKS if task is None else (check_task(task),)
    available = {extra: extra_available(extra) for extra in EXTRAS}
    rows = []
    for t in tasks:
        for entry in CATALOG[t].values():
            rows.append(
                {
                    "name": entry.name,
                    "task": t,
                    "estimator_path": entry.estimator_path,
                    "params": dict(entry.params),
                    "in_default_set": entry.name in DEFAULTS[t],
                    "quadratic": entry.quadratic,
                    "needs_scaling": entry.needs_scaling,
                    "iterative": entry.iterative,
                    "available": available[entry.extra] if entry.extra else True,
                    "extra": entry.extra,
                }
            )
    return rows
