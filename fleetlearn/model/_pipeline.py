"""The model as it is trained, stored and served: preprocessing + estimator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sklearn.pipeline import Pipeline

from fleetlearn.data import Schema, build_preprocessor

if TYPE_CHECKING:
    from fleetlearn.catalog import ModelSpec

__all__ = ["build_pipeline"]


def build_pipeline(spec: ModelSpec, schema: Schema, random_state: int) -> Pipeline:
    """Build the unfitted pipeline of one model for one schema.

    Parameters
    ----------
    spec : ModelSpec
        The resolved model (``fleetlearn.catalog.resolve_model``); its
        ``needs_scaling`` trait decides whether numeric features are standardised.
    schema : Schema
        The dataset's input schema.
    random_state : int
        Seed set on the estimator when it has one and the user did not set it.

    Returns
    -------
    sklearn.pipeline.Pipeline
        ``[("preprocess", ColumnTransformer), ("model", estimator)]``, unfitted. The
        two-step shape is what :class:`~fleetlearn.model.Predictor` compiles.

    Examples
    --------
    >>> from fleetlearn.catalog import resolve_model
    >>> from fleetlearn.data import ColumnSchema
    >>> s = Schema("y", "regression", (ColumnSchema("x", "numeric", "float64", False),))
    >>> [name for name, _ in build_pipeline(resolve_model("ridge", "regression"), s, 0).steps]
    ['preprocess', 'model']
    """
    return Pipeline(
        [
            ("preprocess", build_preprocessor(schema, scale=spec.needs_scaling)),
            ("model", spec.build(random_state=random_state)),
        ]
    )
