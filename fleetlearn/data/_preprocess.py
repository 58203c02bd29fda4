"""The preprocessing ColumnTransformer, its small transformers, and its compiled form.

Every class here is importable as ``fleetlearn.data.<Name>`` and holds only numpy
arrays and Python scalars once fitted, so a fitted pipeline saved with ``skops.io``
holds only types of the registry's exact allow-list.

:func:`compile_preprocessor` is the public way for serving to skip the
``ColumnTransformer``'s per-call overhead: it knows these transformers (and the
scikit-learn steps :func:`build_preprocessor` uses) and turns a fitted preprocessor
into a few numpy operations on validated :class:`~fleetlearn.data.Rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from fleetlearn.data._rows import Rows
from fleetlearn.data._schema import Schema
from fleetlearn.data._values import (
    parse_datetimes,
    to_boolean_floats,
    to_category_strings,
)

__all__ = [
    "BooleanToFloat",
    "CategoryToString",
    "CompiledPreprocessor",
    "DatetimeFeatures",
    "build_preprocessor",
    "compile_preprocessor",
    "MISSING_CATEGORY",
]

MISSING_CATEGORY = "__missing__"
# Categories seen in fewer than 1% of a fold's training rows share one "infrequent"
# column, which also receives categories never seen in training.
_MIN_FREQUENCY = 0.01
_MAX_CATEGORIES = 50
_DATE_PARTS = ("year", "month", "day", "dayofweek")
# Feature names keep pandas' short spelling; the accessor moved to day_of_week.
_DT_ATTRIBUTE = {"dayofweek": "day_of_week"}


def _columns_of(X) -> list[pd.Series]:
    """Split validated 2-D input (DataFrame or array) into one Series per column."""
    if isinstance(X, pd.DataFrame):
        return [X.iloc[:, i].reset_index(drop=True) for i in range(X.shape[1])]
    return [pd.Series(X[:, i]) for i in range(X.shape[1])]


class _ColumnwiseTransformer(TransformerMixin, BaseEstimator):
    """Validates input like ``check_array`` but keeps each DataFrame column's own dtype.

    ``check_array`` would turn a mixed DataFrame into one object array (dates become
    Timestamps, strings lose their dtype); these transformers work column by column, so
    only the shape, sparsity, complex numbers and column names are checked.
    """

    def _validate(self, X, *, reset: bool):
        if sp.issparse(X):
            raise TypeError(
                f"{type(self).__name__} does not accept sparse input; pass a dense array "
                "or a DataFrame."
            )
        if not isinstance(X, pd.DataFrame):
            X = np.asarray(X, dtype=None if _has_dtype(X) else object)
            if X.ndim != 2:
                raise ValueError(
                    f"Expected a 2D array, got {X.ndim}D array instead. Reshape your data "
                    "either using array.reshape(-1, 1) if your data has a single feature or "
                    "array.reshape(1, -1) if it contains a single sample."
                )
            if np.iscomplexobj(X):
                raise ValueError("Complex data not supported.")
        if X.shape[0] == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is "
                f"required by {type(self).__name__}."
            )
        if X.shape[1] == 0:
            raise ValueError(
                f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is "
                f"required by {type(self).__name__}."
            )
        # Checks (reset=False) or records (reset=True) n_features_in_ and feature names.
        validate_data(self, X, reset=reset, skip_check_array=True)
        return X

    def fit(self, X, y=None):
        """Record the input columns (no parameters are learned)."""
        self._validate(X, reset=True)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags


def _has_dtype(X) -> bool:
    return isinstance(X, np.ndarray) and X.dtype != object


class CategoryToString(OneToOneFeatureMixin, _ColumnwiseTransformer):
    """Turn categorical cells into strings, missing cells into one constant category.

    ``1``, ``1.0`` and ``"1"`` all become ``"1"``, so values that arrive as numbers at
    predict time match the strings seen in training.

    Parameters
    ----------
    missing_value : str, default="__missing__"
        The category missing cells become.

    Examples
    --------
    >>> CategoryToString().fit_transform(pd.DataFrame({"c": ["a", None, 1]})).ravel().tolist()
    ['a', '__missing__', '1']
    """

    def __init__(self, missing_value: str = MISSING_CATEGORY):
        self.missing_value = missing_value

    def transform(self, X):
        """Return an object array of category strings."""
        check_is_fitted(self, "n_features_in_")
        X = self._validate(X, reset=False)
        cols = _columns_of(X)
        out = np.empty((X.shape[0], len(cols)), dtype=object)
        for j, col in enumerate(cols):
            strings = to_category_strings(col)
            strings[pd.isna(strings)] = self.missing_value
            out[:, j] = strings
        return out


class BooleanToFloat(OneToOneFeatureMixin, _ColumnwiseTransformer):
    """Map boolean-like cells (True/False, yes/no, y/n, t/f, 1/0) to 1.0/0.0.

    Missing and unrecognised cells become NaN, for the imputer that follows.

    Examples
    --------
    >>> BooleanToFloat().fit_transform(pd.DataFrame({"b": ["yes", "no", None]})).ravel()
    array([ 1.,  0., nan])
    """

    def transform(self, X):
        """Return a float array of 1.0, 0.0 and NaN."""
        check_is_fitted(self, "n_features_in_")
        X = self._validate(X, reset=False)
        cols = _columns_of(X)
        out = np.empty((X.shape[0], len(cols)), dtype=float)
        for j, col in enumerate(cols):
            out[:, j] = to_boolean_floats(col)[0]
        return out


class DatetimeFeatures(_ColumnwiseTransformer):
    """Expand date/time columns into numeric parts: year, month, day, dayofweek (+ hour).

    The hour is added for a column when any training value has a time of day other
    than midnight. Strings are parsed (ISO 8601 first); unparseable cells give NaN.

    Parameters
    ----------
    parts : tuple of str, default=("year", "month", "day", "dayofweek")
        Date parts always extracted (attributes of ``Series.dt``).

    Attributes
    ----------
    has_time_ : list of bool
        Per input column, whether the hour is extracted.

    Examples
    --------
    >>> t = DatetimeFeatures().fit(pd.DataFrame({"d": ["2024-03-01", "2024-03-05"]}))
    >>> t.get_feature_names_out().tolist()
    ['d_year', 'd_month', 'd_day', 'd_dayofweek']
    """

    def __init__(self, parts: tuple[str, ...] = _DATE_PARTS):
        self.parts = parts

    def fit(self, X, y=None):
        """Find out, per column, whether values carry a time of day."""
        X = self._validate(X, reset=True)
        self.has_time_ = []
        for col in _columns_of(X):
            parsed = parse_datetimes(col)
            has_time = bool((parsed.dropna() != parsed.dropna().dt.normalize()).any())
            self.has_time_.append(has_time)
        return self

    def transform(self, X):
        """Return a float array of date parts (NaN where a cell is missing or no date)."""
        check_is_fitted(self, "has_time_")
        X = self._validate(X, reset=False)
        cols = _columns_of(X)
        blocks = []
        for col, has_time in zip(cols, self.has_time_, strict=True):
            parsed = parse_datetimes(col).reset_index(drop=True)
            parts = [*self.parts, "hour"] if has_time else list(self.parts)
            for part in parts:
                values = getattr(parsed.dt, _DT_ATTRIBUTE.get(part, part))
                blocks.append(values.to_numpy(dtype=float, na_value=np.nan))
        if not blocks:
            return np.empty((X.shape[0], 0))
        return np.column_stack(blocks)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "has_time_")
        if input_features is None:
            input_features = getattr(
                self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)]
            )
        names = []
        for name, has_time in zip(input_features, self.has_time_, strict=True):
            parts = [*self.parts, "hour"] if has_time else list(self.parts)
            names.extend(f"{name}_{part}" for part in parts)
        return np.asarray(names, dtype=object)


def build_preprocessor(schema: Schema, scale: bool) -> ColumnTransformer:
    """Build the unfitted preprocessing transformer for a schema's feature columns.

    * numeric: median imputation (+ standard scaling if ``scale``);
    * boolean: mapped to 1.0/0.0, most-frequent imputation;
    * categorical: as strings, missing as its own category, one-hot encoded; categories
      rarer than 1% of the training rows (and unseen ones) share an "infrequent" column;
    * datetime: year, month, day, day of week (and hour when times are present),
      median imputation (+ scaling if ``scale``).

    Parameters
    ----------
    schema : Schema
        The dataset schema (``dataset.schema``).
    scale : bool
        Standard-scale numeric and date features (for linear models, SVMs, k-NN).

    Returns
    -------
    sklearn.compose.ColumnTransformer
        Unfitted; outputs a dense float array and keeps only schema columns.

    Examples
    --------
    >>> from fleetlearn.data import ColumnSchema
    >>> s = Schema("y", "regression", (ColumnSchema("x", "numeric", "float64", True),))
    >>> build_preprocessor(s, scale=True).fit_transform(pd.DataFrame({"x": [1.0, None, 3.0]}))
    array([[-1.22474487],
           [ 0.        ],
           [ 1.22474487]])
    """
    transformers = []

    def imputed(strategy: str, *head) -> list:
        steps = [*head, ("impute", SimpleImputer(strategy=strategy, keep_empty_features=True))]
        if scale:
            steps.append(("scale", StandardScaler()))
        return steps

    numeric = schema.names_of_kind("numeric")
    if numeric:
        transformers.append(("numeric", Pipeline(imputed("median")), numeric))
    boolean = schema.names_of_kind("boolean")
    if boolean:
        steps = [
            ("to_float", BooleanToFloat()),
            ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
        ]
        transformers.append(("boolean", Pipeline(steps), boolean))
    categorical = schema.names_of_kind("categorical")
    if categorical:
        steps = [
            ("to_string", CategoryToString()),
            (
                "onehot",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=_MIN_FREQUENCY,
                    max_categories=_MAX_CATEGORIES,
                    sparse_output=False,
                    dtype=np.float64,
                ),
            ),
        ]
        transformers.append(("categorical", Pipeline(steps), categorical))
    datetime = schema.names_of_kind("datetime")
    if datetime:
        parts = Pipeline(imputed("median", ("parts", DatetimeFeatures())))
        transformers.append(("datetime", parts, datetime))
    return ColumnTransformer(
        transformers,
        remainder="drop",
        sparse_threshold=0.0,
        verbose_feature_names_out=False,
    )


# ------------------------------------------------------------------ compiled form

Block = Callable[[Rows], np.ndarray]


class _Unsupported(Exception):
    """A step or block the compiler does not know: it runs through its fitted object."""


def _step_kernel(step: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy function equal to one fitted step of a preprocessing block."""
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
        return lambda x: x  # Rows hold booleans as 1.0/0.0/NaN already (see _rows._boolean)
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


def _block(trans: Any, cols: list[str], schema: Schema) -> tuple[Block, bool]:
    """One ColumnTransformer block as a function of validated rows (and if compiled)."""
    kinds = {schema.column(c).kind for c in cols}
    try:
        if not isinstance(trans, Pipeline) or len(kinds) != 1 or kinds <= {"datetime"}:
            raise _Unsupported("block")
        fns = [_step_kernel(step) for _, step in trans.steps]
        dtype = object if kinds == {"categorical"} else float

        def compiled(rows: Rows) -> np.ndarray:
            x = np.empty((rows.n, len(cols)), dtype=dtype)
            for j, c in enumerate(cols):
                x[:, j] = rows.columns[c]
            for fn in fns:
                x = fn(x)
            return np.asarray(x, dtype=float)
        return compiled, True
    except _Unsupported:
        sub = Schema(schema.target, schema.task, tuple(schema.column(c) for c in cols))

        def fitted(rows: Rows) -> np.ndarray:
            frame = Rows(rows.n, {c: rows.columns[c] for c in cols}).frame(sub)
            return np.asarray(trans.transform(frame), dtype=float)
        return fitted, False


class CompiledPreprocessor:
    """A fitted preprocessor as numpy operations on :class:`~fleetlearn.data.Rows`.

    Built by :func:`compile_preprocessor`; calling it gives the float feature matrix
    the fitted ``ColumnTransformer`` would give for ``rows.frame(schema)``. Blocks it
    does not know (dates, custom steps) run through their fitted transformer.

    Attributes
    ----------
    n_compiled, n_blocks : int
        How many of the blocks are numpy kernels, out of all blocks.
    """

    def __init__(self, blocks: list[tuple[Block, bool]]) -> None:
        self._blocks = [b for b, _ in blocks]
        self.n_blocks = len(blocks)
        self.n_compiled = sum(1 for _, ok in blocks if ok)

    def __call__(self, rows: Rows) -> np.ndarray:
        if len(self._blocks) == 1:
            return self._blocks[0](rows)
        if not self._blocks:
            return np.empty((rows.n, 0))
        return np.hstack([b(rows) for b in self._blocks])


def compile_preprocessor(preprocessor: ColumnTransformer,
                         schema: Schema) -> CompiledPreprocessor:
    """Compile a fitted :func:`build_preprocessor` into numpy operations.

    Numeric imputation and scaling, boolean and category handling read the fitted
    statistics directly, without building a DataFrame or re-validating parameters on
    every call (most of a one-row ``predict``). Callers should check the result
    against ``preprocessor.transform`` once (``fleetlearn.model.Predictor`` does, on
    probe rows) before relying on it.

    Parameters
    ----------
    preprocessor : sklearn.compose.ColumnTransformer
        A fitted preprocessor, as built by :func:`build_preprocessor`.
    schema : Schema
        The input schema it was fitted for.

    Returns
    -------
    CompiledPreprocessor

    Raises
    ------
    TypeError
        When ``preprocessor`` is not a fitted ``ColumnTransformer``.

    Examples
    --------
    >>> from fleetlearn.data import ColumnSchema, parse_rows
    >>> s = Schema("y", "regression", (ColumnSchema("x", "numeric", "float64", True),))
    >>> pre = build_preprocessor(s, scale=False).fit(pd.DataFrame({"x": [1.0, 3.0]}))
    >>> compile_preprocessor(pre, s)(parse_rows({"records": [{"x": None}]}, s))
    array([[2.]])
    """
    if not isinstance(preprocessor, ColumnTransformer) or not hasattr(preprocessor,
                                                                     "transformers_"):
        raise TypeError(
            f"compile_preprocessor needs a fitted ColumnTransformer (build_preprocessor), "
            f"got {type(preprocessor).__name__}."
        )
    return CompiledPreprocessor([
        _block(trans, list(cols), schema)
        for name, trans, cols in preprocessor.transformers_
        if name != "remainder" and not (isinstance(trans, str) and trans == "drop")
        and len(cols)
    ])
