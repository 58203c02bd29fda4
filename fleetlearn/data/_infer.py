"""Schema inference: the task of a target, the kind of each column, and which to drop.

The rules, in the order they are tried for each column (the target is never a feature):

1. **all missing** -> dropped.
2. **constant**: a single distinct value and no missing values -> dropped. (One value plus
   missing cells is kept: whether a cell is filled can carry signal.)
3. **unsupported cells** (lists, dicts, bytes, complex numbers) -> dropped.
4. **boolean**: ``bool`` dtype, or exactly two distinct strings forming one of the pairs
   true/false, yes/no, y/n, t/f, 1/0 (case-insensitive).
5. **datetime**: ``datetime64`` dtype, or strings of which >= 95% of the non-missing values
   are written like a date *and* parse as one.
6. **numeric**: integer and float dtypes, durations (as seconds), and strings of which
   >= 95% of the non-missing values parse as numbers (the rest become missing, with a
   warning). Integer columns with few distinct values stay numeric: codes like 0/1/2 are
   ordered often enough, and tree models do not care. Integer columns are **ID-like**
   (dropped) when every value is distinct and the column is named like an identifier, is
   sorted, or fills a dense range (a row number). Only tables of at least 20 rows are
   checked for IDs.
7. Strings (and object columns of mixed values, or numbers in an ``object`` column with at
   most 10 distinct values) are, in this order: **free text** (dropped) when the average
   value has >= 4 words and >= 30 characters and >= 20% of the values are distinct;
   **ID-like** (dropped) when >= 95% of the values are distinct; **high-cardinality**
   (dropped) when more than 50% are distinct and there are more than 100 of them;
   otherwise **categorical**.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fleetlearn.data._schema import ColumnSchema
from fleetlearn.data._values import (
    is_boolean_like,
    looks_like_dates,
    parse_datetimes,
    to_category_strings,
)
from fleetlearn.errors import TargetError

__all__ = ["infer_task", "infer_column", "InferredColumn"]

MAX_CLASSES_FOR_INTEGER_TARGET = 20
DATE_SHARE = 0.95
NUMBER_SHARE = 0.95
ID_SHARE = 0.95
MIN_ROWS_FOR_ID = 20
TEXT_MIN_WORDS = 4.0
TEXT_MIN_CHARS = 30.0
TEXT_MIN_DISTINCT_SHARE = 0.2
HIGH_CARD_SHARE = 0.5
HIGH_CARD_MIN = 100
OBJECT_NUMBER_CATEGORIES = 10
SAMPLE_CELLS = 5000
_ID_NAME = re.compile(r"(^|[_\W])(id|ids|uuid|guid|key|index|idx)$|^unnamed: ?\d+$|^$", re.I)


def infer_task(y: pd.Series) -> str:
    """Guess whether a target calls for classification or regression.

    Classification for boolean, string, categorical and object targets, and for numbers
    that are all integral (floats included: an integer column with missing cells is read
    as float) with at most two distinct values, or at most 20 distinct values that are
    each used often (<= max(5% of the rows, 10) distinct values). Regression otherwise.

    Parameters
    ----------
    y : pandas.Series
        The target column; missing values are ignored.

    Returns
    -------
    str
        ``"classification"`` or ``"regression"``.

    Raises
    ------
    TargetError
        When the target has no non-missing value, or holds dates.

    Examples
    --------
    >>> infer_task(pd.Series(["cat", "dog", "cat"]))
    'classification'
    >>> infer_task(pd.Series([0.5, 1.7, 2.2, 3.9]))
    'regression'
    >>> infer_task(pd.Series([0, 1] * 50))
    'classification'
    """
    values = y.dropna()
    if values.empty:
        raise TargetError(
            f"Target column '{y.name}' has no values (all missing). Pick a column with labels."
        )
    dtype = values.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        raise TargetError(
            f"Target column '{y.name}' holds dates; fleetlearn predicts classes or numbers. "
            "Pick another target or convert it to a number first."
        )
    if pd.api.types.is_bool_dtype(dtype):
        return "classification"
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            values = pd.to_numeric(values, errors="coerce").dropna()
            dtype = values.dtype
        else:
            return "classification"
    if not pd.api.types.is_numeric_dtype(dtype):
        return "classification"  # strings, categoricals
    return "classification" if _few_integral_values(values) else "regression"


def _few_integral_values(values: pd.Series) -> bool:
    arr = values.to_numpy(dtype=float)
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        return False
    n_distinct = len(np.unique(arr))
    if n_distinct <= 2:
        return True
    limit = max(0.05 * len(arr), 10)
    return n_distinct <= MAX_CLASSES_FOR_INTEGER_TARGET and n_distinct <= limit


@dataclass
class InferredColumn:
    """Outcome of inferring one column: a schema, or a reason to drop it."""

    name: str
    schema: ColumnSchema | None
    values: pd.Series | None  # the column as it goes into Dataset.X (converted)
    dropped: str | None = None  # reason, for Schema.dropped
    warnings: list[str] = field(default_factory=list)


def infer_column(series: pd.Series) -> InferredColumn:
    """Decide the kind of one feature column, or why it is dropped (see module docstring)."""
    name = str(series.name)
    dtype = str(series.dtype)
    n = len(series)
    present = series.dropna()
    n_present = len(present)

    def drop(reason: str, label: str) -> InferredColumn:
        return InferredColumn(name, None, None, reason, [f"dropped {label} column '{name}'"])

    def keep(kind: str, values: pd.Series, categories=None, notes=()) -> InferredColumn:
        col = ColumnSchema(name, kind, dtype, bool(values.isna().any()), categories)
        return InferredColumn(name, col, values, None, list(notes))

    if n_present == 0:
        return drop("all missing", "all-missing")
    try:
        n_distinct = present.nunique()
    except TypeError:  # unhashable cells: lists, dicts, arrays
        return drop("unsupported cell values (lists, dicts or arrays)", "unsupported")
    if n_distinct == 1 and n_present == n:
        value = present.iloc[0]
        value = value.item() if isinstance(value, np.generic) else value
        return drop(f"constant (every value is {value!r})", "constant")

    if pd.api.types.is_bool_dtype(series.dtype):
        return keep("boolean", series)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return keep("datetime", parse_datetimes(series))
    if pd.api.types.is_timedelta64_dtype(series.dtype):
        seconds = series.dt.total_seconds()
        note = f"column '{name}' holds durations; used as seconds"
        return _infer_numeric(seconds, seconds.dropna(), n_distinct, keep, drop, [note])
    if pd.api.types.is_complex_dtype(series.dtype):
        return drop("unsupported cell values (complex numbers)", "unsupported")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return _infer_numeric(series, present, n_distinct, keep, drop)

    inferred = pd.api.types.infer_dtype(present, skipna=True)
    if inferred == "boolean":
        return keep("boolean", series.astype(object))
    if inferred in ("date", "datetime", "datetime64"):
        return keep("datetime", parse_datetimes(series))
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        # Numbers in an object column: codes when there are few, measurements otherwise.
        if n_distinct > OBJECT_NUMBER_CATEGORIES or inferred == "decimal":
            numbers = pd.to_numeric(series, errors="coerce").astype(float)
            return _infer_numeric(numbers, numbers.dropna(), n_distinct, keep, drop)
        return _categorical(series, keep)
    if inferred in ("bytes", "mixed") and present.map(lambda v: isinstance(v, bytes)).any():
        return drop("unsupported cell values (bytes)", "unsupported")

    # Strings (or mixed strings and numbers). The tests run on a fixed sample of cells so
    # that inference stays fast on big tables; conversions then run on the whole column.
    text = present.astype(str)
    sample = text if len(text) <= SAMPLE_CELLS else text.sample(SAMPLE_CELLS, random_state=0)
    # is_boolean_like compares lower-cased values: "Yes", "yes" and "no" are two values.
    if n_distinct <= 6 and is_boolean_like(text):
        return keep("boolean", series)
    if n_distinct > 1:
        dates = _as_dates(series, sample)
        if dates is not None:
            return keep("datetime", dates)
        numbers = _as_numbers(series, text, sample)
        if numbers is not None:
            values, bad = numbers
            notes = []
            if bad:
                n_cells = int(values.isna().sum() - series.isna().sum())
                notes.append(
                    f"column '{name}' is numeric; {n_cells} cells that are not numbers "
                    f"were treated as missing ({', '.join(repr(b) for b in bad[:3])})"
                )
            return _infer_numeric(values, values.dropna(), values.nunique(), keep, drop, notes)

    share = n_distinct / n_present
    if n_present >= MIN_ROWS_FOR_ID:
        lengths = sample.str.len()
        words = sample.str.count(r"\s+") - sample.str.match(r"\s").astype(int) + 1
        if (
            words.mean() >= TEXT_MIN_WORDS
            and lengths.mean() >= TEXT_MIN_CHARS
            and share >= TEXT_MIN_DISTINCT_SHARE
        ):
            return drop(
                f"free text (average {lengths.mean():.0f} characters, "
                f"{n_distinct} distinct values)",
                "free-text",
            )
        if share >= ID_SHARE:
            return drop(f"ID-like ({n_distinct} distinct values in {n_present} rows)", "ID-like")
        if share > HIGH_CARD_SHARE and n_distinct > HIGH_CARD_MIN:
            return drop(
                f"high-cardinality text ({n_distinct} distinct values in {n_present} rows)",
                "high-cardinality",
            )
    return _categorical(series, keep)


def _categorical(series: pd.Series, keep) -> InferredColumn:
    strings = to_category_strings(series)
    cats = tuple(sorted({s for s in strings if isinstance(s, str)}))
    return keep("categorical", series, cats)


def _infer_numeric(series, present, n_distinct, keep, drop, notes=()) -> InferredColumn:
    name = str(series.name)
    if pd.api.types.is_float_dtype(series.dtype):
        finite = np.isfinite(series.to_numpy(dtype=float, na_value=np.nan)) | series.isna()
        if not finite.all():
            series = series.where(finite, np.nan)
            notes = [
                *notes,
                f"column '{name}': {int((~finite).sum())} infinite values treated as missing",
            ]
            present = series.dropna()
            n_distinct = present.nunique()
            if len(present) == 0:
                return drop("all missing (only infinite values)", "all-missing")
    if (
        pd.api.types.is_integer_dtype(series.dtype)
        and len(present) >= MIN_ROWS_FOR_ID
        and n_distinct == len(present)
        and _looks_like_int_id(name, present)
    ):
        return drop(f"ID-like ({n_distinct} distinct integers in {len(present)} rows)", "ID-like")
    return keep("numeric", series, None, notes)


def _looks_like_int_id(name: str, present: pd.Series) -> bool:
    if _ID_NAME.search(name.strip()):
        return True
    if present.is_monotonic_increasing or present.is_monotonic_decreasing:
        return True
    span = int(present.max()) - int(present.min()) + 1
    return span <= 1.5 * len(present)  # a shuffled row number


def _as_dates(series: pd.Series, sample: pd.Series) -> pd.Series | None:
    if looks_like_dates(sample).mean() < DATE_SHARE:
        return None
    if parse_datetimes(sample).notna().mean() < DATE_SHARE:
        return None
    return parse_datetimes(series)


def _as_numbers(
    series: pd.Series, text: pd.Series, sample: pd.Series
) -> tuple[pd.Series, list[str]] | None:
    if pd.to_numeric(sample.str.strip(), errors="coerce").notna().mean() < NUMBER_SHARE:
        return None
    numbers = pd.to_numeric(text.str.strip(), errors="coerce")
    if numbers.notna().mean() < NUMBER_SHARE:
        return None
    full = pd.Series(np.nan, index=series.index, name=series.name, dtype=float)
    full[numbers.index] = numbers.astype(float)
    bad = sorted(set(text[numbers.isna()].unique()))
    return full, bad
