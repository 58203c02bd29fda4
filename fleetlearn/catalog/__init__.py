"""The model catalog: named model specs and resolving ``module.Class`` specs.

A user names models as ``random_forest``, ``random_forest:n_estimators=50`` or
``sklearn.ensemble.AdaBoostClassifier:n_estimators=200``; :func:`resolve_model`
checks the name, the parameters and their values up front and returns a
:class:`ModelSpec`, plain data that builds a fresh estimator anywhere. Nothing here
trains a model.
"""

from __future__ import annotations

from fleetlearn.catalog._entries import (
    CLASSIFICATION_DEFAULTS,
    REGRESSION_DEFAULTS,
    catalog_entries,
)
from fleetlearn.catalog._label_encoded import LabelEncodedClassifier
from fleetlearn.catalog._params import catalog_models, model_params
from fleetlearn.catalog._resolve import (
    LARGE_TABLE_ROWS,
    SLOW_ON_LARGE_TABLES,
    allowed_model_packages,
    default_models,
    parse_params,
    resolve_model,
    resolve_model_dict,
)
from fleetlearn.catalog._spec import ModelSpec

__all__ = [
    "CLASSIFICATION_DEFAULTS",
    "LARGE_TABLE_ROWS",
    "REGRESSION_DEFAULTS",
    "SLOW_ON_LARGE_TABLES",
    "LabelEncodedClassifier",
    "ModelSpec",
    "catalog_entries",
    "catalog_models",
    "model_params",
    "default_models",
    "parse_params",
    "allowed_model_packages",
    "resolve_model",
    "resolve_model_dict",
]
