"""The preprocessing ColumnTransformer, its small transformers, and serving-time coercion.

Every class here is importable as ``fleetlearn.data.<Name>`` and holds only numpy
arrays and Python scalars once fitted, so a fitted pipeline saved with ``skops.io``
loads with a trusted-type list of ``fleetlearn.*``, ``sklearn.*``, ``numpy.*``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from fleetlearn.data._schema import Schema
from fleetlearn.data._values import (
    parse_datetimes,
    to_boolean_floats,
    to_category_strings,
)
from fleetlearn.errors import DataError

__all__ = [
    "BooleanToFloat",
    "CategoryToString",
    "DatetimeFeatures",
    "build_preprocessor",
    "coerce_frame",
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


def coerce_frame(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Select and cast a frame's columns as the preprocessor expects (serving inputs).

    Columns are selected in schema order (extra columns are ignored) and cast by kind:
    numeric to float, boolean to 1.0/0.0, categorical to strings (missing kept as NaN),
    datetime to ``datetime64``. Missing cells stay missing; the fitted pipeline imputes.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows to predict on.
    schema : Schema
        The schema the model was trained with.

    Returns
    -------
    pandas.DataFrame
        Same index as ``frame``.

    Raises
    ------
    DataError
        Naming every missing column at once, or the columns whose cells cannot be cast.

    Examples
    --------
    >>> from fleetlearn.data import ColumnSchema
    >>> s = Schema("y", "regression", (ColumnSchema("x", "numeric", "int64", False),))
    >>> coerce_frame(pd.DataFrame({"x": ["1", None], "other": [0, 0]}), s).dtypes.tolist()
    [dtype('float64')]
    """
    names = schema.feature_names
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise DataError(
            f"Input is missing {len(missing)} feature column{'s' if len(missing) > 1 else ''}: "
            f"{', '.join(repr(c) for c in missing)}. The model expects: {', '.join(names)}."
        )
    out: dict[str, object] = {}
    problems: list[str] = []
    for col in schema.columns:
        values = frame[col.name]
        present = values.notna().to_numpy()
        if col.kind == "numeric":
            obj = values.astype(object).where(values.notna(), None)
            cast = pd.to_numeric(obj, errors="coerce").astype(float)
            cast = cast.where(np.isfinite(cast.to_numpy()), np.nan)
            bad = present & cast.isna().to_numpy() & ~_is_inf(values)
            out[col.name] = cast.to_numpy()
        elif col.kind == "boolean":
            floats, bad = to_boolean_floats(values)
            out[col.name] = floats
        elif col.kind == "categorical":
            # Object, not pandas' str dtype: the column may hold NaN next to strings.
            out[col.name] = pd.Series(
                to_category_strings(values.reset_index(drop=True)), dtype=object
            ).to_numpy()
            bad = np.zeros(len(values), dtype=bool)
        else:
            parsed = parse_datetimes(values.reset_index(drop=True))
            bad = present & parsed.isna().to_numpy()
            out[col.name] = parsed.to_numpy()
        if bad.any():
            examples = ", ".join(repr(v) for v in pd.unique(values[bad])[:3])
            problems.append(f"'{col.name}' expects {_EXPECTED[col.kind]}, got {examples}")
    if problems:
        raise DataError(
            f"Cannot convert input columns: {'; '.join(problems)}. "
            "Send values of the type the model was trained on (or leave them empty)."
        )
    series = {n: pd.Series(a, index=frame.index, dtype=_dtype_of(a)) for n, a in out.items()}
    return pd.DataFrame(series, columns=names)


_EXPECTED = {
    "numeric": "numbers",
    "boolean": "true/false (or yes/no, 1/0)",
    "datetime": "dates (e.g. 2024-03-01)",
    "categorical": "text",
}


def _dtype_of(arr: np.ndarray):
    return object if arr.dtype == object else arr.dtype


def _is_inf(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_float_dtype(values.dtype):
        return np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
    return np.zeros(len(values), dtype=bool)
