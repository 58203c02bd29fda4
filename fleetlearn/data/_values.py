"""Value conversions shared by schema inference, the preprocessor and serving.

Training and prediction must turn a cell into the same feature, whatever type it
arrives as (``1``, ``1.0`` and ``"1"`` are the same category; ``"yes"``, ``True`` and
``1`` the same boolean). Keeping these rules in one module guarantees that.
"""

from __future__ import annotations

import math
import re
from numbers import Integral, Real

import numpy as np
import pandas as pd

__all__ = [
    "BOOLEAN_PAIRS",
    "category_string",
    "to_category_strings",
    "is_boolean_like",
    "to_boolean_floats",
    "parse_datetimes",
    "looks_like_dates",
]

# Two-valued string columns made of one of these pairs are booleans (case-insensitive).
BOOLEAN_PAIRS: tuple[frozenset[str], ...] = (
    frozenset({"true", "false"}),
    frozenset({"yes", "no"}),
    frozenset({"y", "n"}),
    frozenset({"t", "f"}),
    frozenset({"1", "0"}),
)
_TRUE = {"true", "yes", "y", "t", "1", "1.0"}
_FALSE = {"false", "no", "n", "f", "0", "0.0"}
_WORD_VALUE = {**dict.fromkeys(_TRUE, 1.0), **dict.fromkeys(_FALSE, 0.0)}

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
# A date needs a day, a month and a year: "2024-03-01", "01/03/2024", "Mar 1, 2024", with an
# optional time. Bare numbers ("2024", "1.5") and times ("12:30") are not dates.
_DATE_RE = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
    rf"|\d{{1,2}}\s+({_MONTHS})[a-z]*\.?,?\s+\d{{4}}|({_MONTHS})[a-z]*\.?\s+\d{{1,2}},?\s+\d{{4}})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([ap]\.?m\.?)?\s*(z|[+-]\d{2}:?\d{2}|utc)?)?\s*$",
    re.IGNORECASE,
)


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def category_string(value: object) -> str | None:
    """Return the category a cell stands for, or None when it is missing.

    Integral numbers lose their ``.0`` so that ``1``, ``1.0`` and ``"1"`` agree.

    >>> [category_string(v) for v in (1, 1.0, "1", True, None, 2.5)]
    ['1', '1', '1', 'True', None, '2.5']
    """
    if _is_missing(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        f = float(value)
        if math.isinf(f):
            return str(f)
        return str(int(f)) if f.is_integer() else repr(f)
    return str(value)


def to_category_strings(values: pd.Series | np.ndarray) -> np.ndarray:
    """Convert a column to an object array of category strings, missing values as NaN."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return series.to_numpy(dtype=object, na_value=np.nan)
    out = np.empty(len(series), dtype=object)
    for i, v in enumerate(series.to_numpy(dtype=object)):
        s = category_string(v)
        out[i] = np.nan if s is None else s
    return out


def is_boolean_like(values: pd.Series) -> bool:
    """True when the non-missing values are exactly one of the pairs in ``BOOLEAN_PAIRS``."""
    distinct = {str(v).strip().lower() for v in values.dropna().unique()}
    return len(distinct) == 2 and frozenset(distinct) in BOOLEAN_PAIRS


def to_boolean_floats(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map a column to 1.0/0.0, missing to NaN.

    Returns
    -------
    floats : numpy.ndarray of float64
        1.0 for true-like, 0.0 for false-like, NaN for missing or unrecognised cells.
    unrecognised : numpy.ndarray of bool
        True where a non-missing cell is not a boolean word or 0/1.
    """
    if isinstance(values, pd.Series) and pd.api.types.is_string_dtype(values.dtype):
        if values.dtype != object:  # pandas' str dtype: vectorised path for big columns
            keys = values.str.strip().str.lower()
            out = keys.map(_WORD_VALUE).to_numpy(dtype=float, na_value=np.nan)
            return out, (values.notna() & np.isnan(out)).to_numpy()
    arr = np.asarray(values, dtype=object).ravel()
    out = np.full(arr.shape[0], np.nan)
    bad = np.zeros(arr.shape[0], dtype=bool)
    for i, v in enumerate(arr):
        if _is_missing(v):
            continue
        if isinstance(v, bool | np.bool_):
            out[i] = float(bool(v))
            continue
        key = category_string(v)
        key = key.strip().lower() if key is not None else ""
        if key in _TRUE:
            out[i] = 1.0
        elif key in _FALSE:
            out[i] = 0.0
        else:
            bad[i] = True
    return out, bad


def looks_like_dates(values: pd.Series) -> np.ndarray:
    """Boolean mask of the cells that are written like a date (see ``_DATE_RE``)."""
    return np.array([bool(_DATE_RE.match(str(v))) for v in values], dtype=bool)


def parse_datetimes(values: pd.Series | np.ndarray) -> pd.Series:
    """Parse a column to tz-naive ``datetime64[us]``; unparseable cells become NaT.

    Timezone-aware values are converted to UTC first so that one instant gives one
    feature whatever offset it was written with.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        parsed = series.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(series.dtype):
        parsed = series
    else:
        obj = series.astype(object).where(series.notna(), None)
        # Bare numbers are not dates (and pandas will read them as epochs one day).
        obj = obj.map(lambda v: str(v) if isinstance(v, Real) and not isinstance(v, bool) else v)
        # ISO first: fast and unambiguous. Then one guessed format, then per-cell parsing
        # for the stragglers only (slow, but rare).
        parsed = pd.to_datetime(obj, errors="coerce", format="ISO8601", utc=True)
        todo = parsed.isna() & series.notna()
        if todo.any():
            rest = obj[todo].astype(str)
            # Only cells written like a date get the slow parsers; the rest stay NaT.
            rest = rest[looks_like_dates(rest)]
            if len(rest):
                parsed = parsed.copy()
                parsed[rest.index] = _parse_with_guessed_format(rest)
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[us]")


def _parse_with_guessed_format(text: pd.Series) -> pd.Series:
    """Parse non-ISO strings with the one format (month- or day-first) that fits most cells.

    Parsing cell by cell would read "02/01/2024" month-first and "13/01/2024" day-first in
    the same column; one format for the column keeps the dates consistent.
    """
    first = text.iloc[0]
    best = None
    for dayfirst in (False, True):
        fmt = pd.tseries.api.guess_datetime_format(first, dayfirst=dayfirst)
        if fmt is None:
            continue
        attempt = pd.to_datetime(text, errors="coerce", format=fmt, utc=True)
        if best is None or attempt.notna().sum() > best.notna().sum():
            best = attempt
    if best is None:
        best = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    still = best.isna()
    if still.any():
        best = best.copy()
        best[still] = pd.to_datetime(text[still], errors="coerce", format="mixed", utc=True)
    return best
