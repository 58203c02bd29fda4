"""A model version ready to serve: checked inputs in, labels (and probabilities) out.

A fitted fleetlearn pipeline (``ColumnTransformer`` preprocessing, then the
estimator) spends most of a single-row ``predict`` on per-call overhead: building a
DataFrame, selecting columns by name, re-validating parameters in every step. The
predictor removes that where it can prove it safe: numeric imputation and scaling,
boolean and category handling are *compiled* into a few numpy operations that read the
fitted statistics, and the estimator is called on the resulting array. Anything it does
not recognise runs through the fitted step itself. At load time the compiled path is
checked against the pipeline's own ``transform`` on probe rows built from the schema;
if they differ at all, the model is served by the plain pipeline instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from fleetlearn.data import Schema
from fleetlearn.data._preprocess import BooleanToFloat, CategoryToString
from fleetlearn.serving._inputs import InputError, InputProblem, Rows

__all__ = ["Predictor", "concat_rows"]

log = logging.getLogger("fleetlearn.serving")

Block = Callable[[Rows], np.ndarray]


class _Unsupported(Exception):
    pass


def concat_rows(parts: Sequence[Rows]) -> Rows:
    """Stack the rows of several requests (micro-batching) into one :class:`Rows`."""
    if len(parts) == 1:
        return parts[0]
    names = parts[0].columns.keys()
    return Rows(
        n=sum(p.n for p in parts),
        columns={c: np.concatenate([p.columns[c] for p in parts]) for c in names},
    )


def _step_fn(step: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy function equal to one fitted pipeline step, or _Unsupported."""
    if isinstance(step, SimpleImputer):
        if step.add_indicator or not np.issubdtype(np.asarray(step.statistics_).dtype,
                                                    np.number):
            raise _Unsupported("imputer")
        stats = np.asarray(step.statistics_, dtype=float)
        return lambda x: np.where(np.isnan(x), stats, x)
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def scaled(x: np.ndarray) -> np.ndarray:
            if mean is not None:
                x = x - mean
            if scale is not None:
                x = x / scale
            return x
        return scaled
    if isinstance(step, BooleanToFloat):
        return lambda x: x  # inputs arrive as 1.0/0.0/NaN already (see _inputs._boolean)
    if isinstance(step, CategoryToString):
        missing = step.missing_value

        def strings(x: np.ndarray) -> np.ndarray:
            x = x.copy()
            x[np.equal(x, None)] = missing
            return x
        return strings
    if isinstance(step, OneHotEncoder):
        return step.transform
    raise _Unsupported(type(step).__name__)


def _block(trans: Any, cols: list[str], schema: Schema) -> Block:
    """One ColumnTransformer block as a function of validated rows."""
    kinds = {schema.column(c).kind for c in cols}
    try:
        if not isinstance(trans, Pipeline) or len(kinds) != 1 or kinds <= {"datetime"}:
            raise _Unsupported("block")
        fns = [_step_fn(step) for _, step in trans.steps]
        dtype = object if kinds == {"categorical"} else float

        def compiled(rows: Rows) -> np.ndarray:
            x = np.empty((rows.n, len(cols)), dtype=dtype)
            for j, c in enumerate(cols):
                x[:, j] = rows.columns[c]
            for fn in fns:
                x = fn(x)
            return np.asarray(x, dtype=float)
        return compiled
    except _Unsupported:
        def fitted(rows: Rows) -> np.ndarray:
            frame = Rows(rows.n, {c: rows.columns[c] for c in cols}).frame(
                Schema(schema.target, schema.task, tuple(schema.column(c) for c in cols)))
            return np.asarray(trans.transform(frame), dtype=float)
        return fitted


def _probe_rows(schema: Schema, ct: ColumnTransformer, n: int = 40) -> Rows:
    """Rows that exercise every branch: typical and extreme values, missing, unseen."""
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
    """

    def __init__(self, pipeline: Any, schema: Schema) -> None:
        self.pipeline = pipeline
        self.schema = schema
        self.known_extra = frozenset(schema.dropped) | {schema.target}
        estimator = pipeline.steps[-1][1] if isinstance(pipeline, Pipeline) else pipeline
        self.estimator = estimator
        self.classes = [_plain(c) for c in getattr(estimator, "classes_", [])]
        self.has_proba = schema.task == "classification" and hasattr(pipeline, "predict_proba")
        self._blocks: list[Block] | None = None
        self.compiled_reason = "not a fleetlearn pipeline"
        if (isinstance(pipeline, Pipeline) and len(pipeline.steps) == 2
                and isinstance(pipeline.steps[0][1], ColumnTransformer)):
            self._compile(pipeline.steps[0][1])

    @property
    def compiled(self) -> bool:
        """Whether predictions skip the pipeline's per-call overhead (see module doc)."""
        return self._blocks is not None

    def _compile(self, ct: ColumnTransformer) -> None:
        blocks = [
            _block(trans, list(cols), self.schema)
            for name, trans, cols in ct.transformers_
            if name != "remainder" and not (isinstance(trans, str) and trans == "drop")
            and len(cols)
        ]
        probe = _probe_rows(self.schema, ct)
        try:
            with sklearn.config_context(skip_parameter_validation=True):
                expected = np.asarray(ct.transform(probe.frame(self.schema)), dtype=float)
            got = np.hstack([b(probe) for b in blocks]) if blocks else np.empty((probe.n, 0))
        except Exception as exc:  # noqa: BLE001 - any failure: serve the plain pipeline
            self.compiled_reason = f"probe failed: {exc}"
            return
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-9,
                                                          atol=1e-12, equal_nan=True):
            self.compiled_reason = "compiled preprocessing differs from the pipeline"
            log.warning("serving the plain pipeline: %s", self.compiled_reason)
            return
        self._blocks = blocks
        self.compiled_reason = "ok"

    def features(self, rows: Rows) -> np.ndarray:
        """The estimator's input for ``rows`` (compiled path only)."""
        assert self._blocks is not None
        if len(self._blocks) == 1:
            return self._blocks[0](rows)
        return np.hstack([b(rows) for b in self._blocks])

    def predict(self, rows: Rows, proba: bool = False) -> Prediction:
        """Predict labels (and, when asked and available, probabilities by class)."""
        start = time.perf_counter()
        with (sklearn.config_context(skip_parameter_validation=True),
              np.errstate(over="ignore", invalid="ignore")):
            if self._blocks is not None:
                model, X = self.estimator, self.features(rows)
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
