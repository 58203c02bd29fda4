"""A model version ready to serve: checked inputs in, labels (and probabilities) out.

A fitted fleetlearn pipeline (``ColumnTransformer`` preprocessing, then the
estimator) spends most of a single-row ``predict`` on per-call overhead: building a
DataFrame, selecting columns by name, re-validating parameters in every step. The
predictor removes that where it can prove it safe: the preprocessing is *compiled*
into a few numpy operations by :func:`fleetlearn.data.compile_preprocessor` and the
estimator is called on the resulting array. At load time the compiled path is checked
against the pipeline's own ``transform`` and ``predict`` on probe rows built from the
schema; if they differ at all, the model is served by the plain pipeline instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from fleetlearn.data import (
    CompiledPreprocessor,
    InputError,
    InputProblem,
    Rows,
    Schema,
    compile_preprocessor,
)

__all__ = ["Prediction", "Predictor", "probe_rows"]

log = logging.getLogger("fleetlearn.model")


def probe_rows(schema: Schema, n: int = 40) -> Rows:
    """Rows that exercise every branch: typical and extreme values, missing, unseen.

    Examples
    --------
    >>> from fleetlearn.data import ColumnSchema
    >>> s = Schema("y", "regression", (ColumnSchema("x", "numeric", "float64", True),))
    >>> probe_rows(s).n
    40
    """
    rng = np.random.default_rng(0)
    cols: dict[str, np.ndarray] = {}
    for col in schema.columns:
        if col.kind == "numeric":
            base = rng.normal(0, 1, n) * rng.choice([1e-3, 1, 1e3], n)
            base[::7] = np.nan
            cols[col.name] = base
        elif col.kind == "boolean":
            cols[col.name] = rng.choice([0.0, 1.0, np.nan], n)
        elif col.kind == "categorical":
            choices = [*(col.categories or ()), "__never_seen__", None]
            cols[col.name] = np.array([choices[i % len(choices)] for i in range(n)],
                                      dtype=object)
        else:
            days = rng.integers(0, 20_000, n).astype("timedelta64[D]")
            dates = (np.datetime64("1990-01-01") + days).astype("datetime64[us]")
            dates[::9] = np.datetime64("NaT")
            cols[col.name] = dates
    return Rows(n=n, columns=cols)


@dataclass
class Prediction:
    """Labels (and class probabilities) for a batch of rows."""

    labels: list[Any]
    proba: list[dict[str, float]] | None
    seconds: float


class Predictor:
    """Serve one fitted pipeline under its input schema.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        The registered model (preprocessing + estimator).
    schema : Schema
        Its input schema.

    Examples
    --------
    >>> p = Predictor(reg.load_model("wine-random_forest"), schema)   # doctest: +SKIP
    >>> p.predict(parse_rows({"records": [...]}, schema)).labels      # doctest: +SKIP

    Most callers get one from :func:`~fleetlearn.model.load_predictor`.
    """

    def __init__(self, pipeline: Any, schema: Schema) -> None:
        self.pipeline = pipeline
        self.schema = schema
        self.known_extra = frozenset(schema.dropped) | {schema.target}
        estimator = pipeline.steps[-1][1] if isinstance(pipeline, Pipeline) else pipeline
        self.estimator = estimator
        self.classes = [_plain(c) for c in getattr(estimator, "classes_", [])]
        self.has_proba = schema.task == "classification" and hasattr(pipeline, "predict_proba")
        self._features: CompiledPreprocessor | None = None
        self.compiled_reason = "not a fleetlearn pipeline"
        if (isinstance(pipeline, Pipeline) and len(pipeline.steps) == 2
                and isinstance(pipeline.steps[0][1], ColumnTransformer)):
            self._compile(pipeline.steps[0][1])

    @property
    def compiled(self) -> bool:
        """Whether predictions skip the pipeline's per-call overhead (see module doc)."""
        return self._features is not None

    def _compile(self, ct: ColumnTransformer) -> None:
        probe = probe_rows(self.schema)
        try:
            features = compile_preprocessor(ct, self.schema)
            with (sklearn.config_context(skip_parameter_validation=True),
                  np.errstate(over="ignore", invalid="ignore")):
                frame = probe.frame(self.schema)
                expected = np.asarray(ct.transform(frame), dtype=float)
                got = features(probe)
                same = got.shape == expected.shape and np.allclose(
                    got, expected, rtol=1e-9, atol=1e-12, equal_nan=True)
                if same:
                    # The estimator on the compiled features must answer as the pipeline.
                    want = np.asarray(self.pipeline.predict(frame))
                    have = np.asarray(self.estimator.predict(got))
                    same = want.shape == have.shape and (
                        np.allclose(want, have, rtol=1e-9, atol=1e-12, equal_nan=True)
                        if want.dtype.kind in "fc" else bool((want == have).all()))
        except Exception as exc:  # noqa: BLE001 - any failure: serve the plain pipeline
            self.compiled_reason = f"probe failed: {exc}"
            return
        if not same:
            self.compiled_reason = "compiled preprocessing differs from the pipeline"
            log.warning("serving the plain pipeline: %s", self.compiled_reason)
            return
        self._features = features
        self.compiled_reason = "ok"

    def features(self, rows: Rows) -> np.ndarray:
        """The estimator's input for ``rows`` (compiled path only)."""
        assert self._features is not None
        return self._features(rows)

    def predict(self, rows: Rows, proba: bool = False) -> Prediction:
        """Predict labels (and, when asked and available, probabilities by class)."""
        start = time.perf_counter()
        with (sklearn.config_context(skip_parameter_validation=True),
              np.errstate(over="ignore", invalid="ignore")):
            if self._features is not None:
                model, X = self.estimator, self._features(rows)
            else:
                model, X = self.pipeline, rows.frame(self.schema)
            try:
                labels = np.asarray(model.predict(X))
                probabilities = None
                if proba and self.has_proba:
                    matrix = np.asarray(model.predict_proba(X), dtype=float)
                    keys = [str(c) for c in self.classes]
                    probabilities = [dict(zip(keys, map(float, r), strict=True))
                                     for r in matrix]
            except ValueError as exc:
                # Finite JSON numbers such as 1e308 overflow once scaled (or cast to
                # float32 by tree models): the caller's values, so a 422, not a 500.
                if "too large" not in str(exc):
                    raise
                raise InputError([InputProblem(
                    ("body",), "Some numbers are too large for this model (they overflow "
                    f"once preprocessed: {str(exc).splitlines()[0]}); send values of the "
                    "magnitude the model was trained on.", "value_too_large")]) from exc
        if labels.dtype.kind == "f" and not np.isfinite(labels).all():
            # A linear model fed huge (finite) numbers answers inf or NaN: the input's
            # fault, so a 422 naming the rows rather than a silent null.
            bad = np.flatnonzero(~np.isfinite(labels))
            raise InputError([InputProblem(
                ("body", "rows", int(i)), f"Row {int(i)}: the prediction is not a finite "
                "number (values too large for this model?); send values of the magnitude "
                "the model was trained on.", "value_too_large") for i in bad[:20]],
                extra=max(0, len(bad) - 20))
        return Prediction([_plain(v) for v in labels.tolist()], probabilities,
                          time.perf_counter() - start)


def _plain(value: Any) -> Any:
    """A JSON-friendly Python scalar."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
