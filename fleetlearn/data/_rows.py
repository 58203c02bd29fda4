"""Prediction inputs: check rows against a model's input schema and convert their values.

The one input-coercion path of fleetlearn: :func:`parse_rows` reads a predict body
(the API's JSON), :func:`coerce_frame` a DataFrame; both convert through the same
per-kind functions and give :class:`Rows`, the arrays the preprocessor (or its compiled
form, :func:`~fleetlearn.data.compile_preprocessor`) expects.

Every problem is collected (not just the first) so a client fixes its request in one
round trip. Values are converted exactly as training read them (``_values``): ``1``,
``1.0`` and ``"1"`` are the same category; ``true``, ``"yes"`` and ``1`` the same
boolean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from fleetlearn.data._schema import Schema
from fleetlearn.data._values import category_string, parse_datetimes
from fleetlearn.errors import DataError, did_you_mean

__all__ = [
    "InputProblem",
    "InputError",
    "Rows",
    "parse_rows",
    "coerce_frame",
    "concat_rows",
    "MAX_PROBLEMS",
]

#: At most this many problems are listed; a count of the rest follows.
MAX_PROBLEMS = 50

_TRUE = {"true", "yes", "y", "t", "1", "1.0"}
_FALSE = {"false", "no", "n", "f", "0", "0.0"}


@dataclass(frozen=True)
class InputProblem:
    """One thing wrong with a request: where (``loc``), what, and its kind (``type``)."""

    loc: tuple[Any, ...]
    msg: str
    type: str

    def to_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


class InputError(Exception):
    """The request body does not fit the model; ``problems`` lists every issue.

    ``status`` is 422 for content problems, 413 for too many rows.
    """

    def __init__(self, problems: list[InputProblem], status: int = 422, extra: int = 0):
        self.problems = problems
        self.status = status
        self.extra = extra
        super().__init__("; ".join(p.msg for p in problems[:3]))


@dataclass
class Rows:
    """Validated feature columns, converted to what the preprocessor expects.

    ``columns`` maps each schema feature to a numpy array: float64 for numeric and
    boolean (NaN = missing), object strings (None = missing) for categorical,
    ``datetime64[us]`` for datetime. ``unseen`` counts categories never seen in
    training, per column.
    """

    n: int
    columns: dict[str, np.ndarray]
    unseen: dict[str, int] = field(default_factory=dict)

    def frame(self, schema: Schema) -> pd.DataFrame:
        """The rows as a DataFrame in schema order (the full pipeline's input)."""
        data = {}
        for col in schema.columns:
            values = self.columns[col.name]
            if col.kind == "categorical":
                values = np.array([np.nan if v is None else v for v in values], dtype=object)
            data[col.name] = values
        return pd.DataFrame(data, columns=schema.feature_names)


def _body_rows(body: Any, max_rows: int) -> tuple[list[str], list[list[Any]] | None,
                                                   list[dict[str, Any]] | None]:
    """Return (columns, data) or (None, records) from either accepted body layout."""
    if not isinstance(body, dict):
        raise InputError([InputProblem(("body",), "The body must be a JSON object with "
                                       "'records' or 'columns' and 'data'.", "body")])
    unknown = sorted(set(body) - {"records", "columns", "data", "return_proba"})
    if unknown:
        raise InputError([InputProblem(("body", unknown[0]), f"Unknown field(s) "
                          f"{', '.join(map(repr, unknown))}: send 'records' or 'columns' and "
                          "'data', and optionally 'return_proba'.", "extra_forbidden")])
    if "records" in body and ("columns" in body or "data" in body):
        raise InputError([InputProblem(("body",), "Send either 'records' or 'columns' and "
                                       "'data', not both.", "body")])
    if "records" in body:
        records = body["records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise InputError([InputProblem(("body", "records"), "'records' must be a list of "
                                           "objects, one per row: [{\"col\": value, ...}].",
                                           "list_type")])
        _check_count(len(records), max_rows)
        return [], None, records
    columns, data = body.get("columns"), body.get("data")
    if columns is None or data is None:
        raise InputError([InputProblem(("body",), "Send 'records' (a list of objects) or "
                                       "'columns' (names) and 'data' (a list of rows).",
                                       "missing")])
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InputError([InputProblem(("body", "columns"), "'columns' must be a list of "
                                       "column names.", "list_type")])
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise InputError([InputProblem(("body", "columns"), "Duplicate column(s): "
                                       f"{', '.join(map(repr, dupes))}.", "duplicate")])
    if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        raise InputError([InputProblem(("body", "data"), "'data' must be a list of rows, "
                                       "each a list of values in 'columns' order.",
                                       "list_type")])
    _check_count(len(data), max_rows)
    bad = [i for i, r in enumerate(data) if len(r) != len(columns)]
    if bad:
        raise InputError([InputProblem(("body", "data", i), f"Row {i} has {len(data[i])} "
                                       f"values; 'columns' names {len(columns)}.", "length")
                          for i in bad[:MAX_PROBLEMS]], extra=max(0, len(bad) - MAX_PROBLEMS))
    return columns, data, None


def _check_count(n: int, max_rows: int) -> None:
    if n == 0:
        raise InputError([InputProblem(("body",), "No rows to predict: send at least one.",
                                       "empty")])
    if n > max_rows:
        raise InputError([InputProblem(("body",), f"{n} rows is more than this server "
                                       f"accepts per request ({max_rows}); split the request "
                                       "or raise --max-rows.", "too_many_rows")], status=413)


def parse_rows(body: Any, schema: Schema, max_rows: int = 10_000,
               known_extra: frozenset[str] = frozenset()) -> Rows:
    """Check a predict body against ``schema`` and convert its values.

    Parameters
    ----------
    body : dict
        ``{"records": [{col: value}, ...]}`` or ``{"columns": [...], "data": [[...]]}``.
    schema : Schema
        The model version's input schema.
    max_rows : int
        More rows give a 413 :class:`InputError`.
    known_extra : frozenset of str
        Columns that are not features but were in the training table (the target,
        dropped ID or text columns): accepted and ignored. Any other column is an error,
        which catches misspelt names.

    Raises
    ------
    InputError
        With every problem found (422) or too many rows (413).

    Examples
    --------
    >>> from fleetlearn.data import ColumnSchema
    >>> s = Schema("y", "regression", (ColumnSchema("x", "numeric", "float64", False),))
    >>> parse_rows({"records": [{"x": 1}, {"x": None}]}, s).columns["x"]
    array([ 1., nan])
    """
    columns, data, records = _body_rows(body, max_rows)
    names = schema.feature_names
    allowed = set(names) | set(known_extra)
    problems: list[InputProblem] = []
    if records is not None:
        n = len(records)
        seen: set[str] = set()
        for r in records:
            seen.update(r)
        missing = [c for c in names if c not in seen]
        # A column absent from some records only is a missing value per record, below.
        raw = {c: [r.get(c, _ABSENT) for r in records] for c in names if c in seen}
        where = "records"
    else:
        assert data is not None
        n = len(data)
        missing = [c for c in names if c not in columns]
        seen = set(columns)
        index = {c: i for i, c in enumerate(columns)}
        raw = {c: [row[index[c]] for row in data] for c in names if c in index}
        where = "columns"
    for c in missing:
        problems.append(InputProblem(("body", where, c), f"Missing column '{c}' "
                                     f"({schema.column(c).kind}).", "missing_column"))
    for c in sorted(seen - allowed):
        hint = did_you_mean(c, missing or names)
        problems.append(InputProblem(("body", where, c), f"Unknown column '{c}'.{hint} "
                                     "Features are listed in the model's input_schema "
                                     "(GET /v1/models/{name}/versions/{version}).",
                                     "unknown_column"))
    out, unseen = _convert(raw, schema, "records" if records is not None else "data",
                           problems)
    if problems:
        raise InputError(problems[:MAX_PROBLEMS], extra=max(0, len(problems) - MAX_PROBLEMS))
    return Rows(n=n, columns=out, unseen=unseen)


def _convert(raw: dict[str, list[Any]], schema: Schema, where: str,
             problems: list[InputProblem]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Convert each present feature column by kind; append a problem per bad cell."""
    out: dict[str, np.ndarray] = {}
    unseen: dict[str, int] = {}
    for col in schema.columns:
        values = raw.get(col.name)
        if values is None:
            continue
        converted, bad = _CONVERT[col.kind](values)
        for i, msg in bad:
            problems.append(InputProblem(("body", where, i, col.name), msg, "type"))
        out[col.name] = converted
        if col.kind == "categorical" and col.categories is not None:
            known = set(col.categories)
            count = sum(1 for v in converted if v is not None and v not in known)
            if count:
                unseen[col.name] = count
    return out, unseen


def coerce_frame(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Check and convert a DataFrame's feature columns as :func:`parse_rows` does.

    A thin wrapper of the API's input path for Python callers: the cells are read as
    the JSON values they stand for (numpy scalars as Python numbers, NaN/NaT as
    missing, timestamps as ISO 8601 text, and, in numeric columns, text that reads as a
    finite number as that number: frames read from text files or forms carry numbers as
    text), converted by the same per-kind rules, and returned as the frame the fitted
    pipeline expects. Extra columns are ignored.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows to predict on.
    schema : Schema
        The schema the model was trained with.

    Returns
    -------
    pandas.DataFrame
        The feature columns in schema order, same index as ``frame``.

    Raises
    ------
    DataError
        Naming every missing column at once, or every cell that cannot be converted
        (column, row and value).

    Examples
    --------
    >>> from fleetlearn.data import ColumnSchema
    >>> s = Schema("y", "regression", (ColumnSchema("x", "numeric", "int64", False),))
    >>> coerce_frame(pd.DataFrame({"x": [1, None], "other": [0, 0]}), s).dtypes.tolist()
    [dtype('float64')]
    """
    names = schema.feature_names
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise DataError(
            f"Input is missing {len(missing)} feature column{'s' if len(missing) > 1 else ''}: "
            f"{', '.join(repr(c) for c in missing)}. The model expects: {', '.join(names)}."
        )
    problems: list[InputProblem] = []
    raw = {col.name: _json_cells(frame[col.name], col.kind) for col in schema.columns}
    out, unseen = _convert(raw, schema, "data", problems)
    if problems:
        listed = "; ".join(f"'{p.loc[-1]}': {p.msg.rstrip('.')}"
                           for p in problems[:MAX_PROBLEMS])
        more = len(problems) - MAX_PROBLEMS
        raise DataError(
            f"Cannot convert input columns: {listed}{f' (and {more} more)' if more > 0 else ''}."
            " Send values of the type the model was trained on (or leave them empty)."
        )
    result = Rows(n=len(frame), columns=out, unseen=unseen).frame(schema)
    result.index = frame.index
    # Object, not pandas' str dtype: a categorical column holds NaN next to strings.
    categorical = schema.names_of_kind("categorical")
    return result.astype(dict.fromkeys(categorical, object)) if categorical else result


def _json_cells(values: pd.Series, kind: str) -> list[Any]:
    """A column's cells as the JSON values they stand for (what parse_rows receives)."""
    cells: list[Any] = []
    for v in values.to_numpy(dtype=object):
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v):
            cells.append(None)
        elif kind == "numeric" and isinstance(v, str):
            cells.append(_number_or_text(v))
        elif isinstance(v, datetime | date | np.datetime64):
            stamp = pd.Timestamp(v)
            cells.append(None if pd.isna(stamp) else stamp.isoformat())
        elif isinstance(v, np.generic):
            cells.append(v.item())
        else:
            cells.append(v)
    return cells


def _number_or_text(text: str) -> Any:
    """``"4.5"`` as 4.5 (text that is not a finite number stays text, to be reported)."""
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def concat_rows(parts: Sequence[Rows]) -> Rows:
    """Stack the rows of several requests (micro-batching) into one :class:`Rows`.

    Examples
    --------
    >>> one = Rows(1, {"x": np.array([1.0])})
    >>> concat_rows([one, one]).columns["x"]
    array([1., 1.])
    """
    if len(parts) == 1:
        return parts[0]
    names = parts[0].columns.keys()
    return Rows(
        n=sum(p.n for p in parts),
        columns={c: np.concatenate([p.columns[c] for p in parts]) for c in names},
    )


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _numeric(values: list[Any]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    out = np.empty(len(values), dtype=float)
    bad = []
    for i, v in enumerate(values):
        if v is None or v is _ABSENT:
            out[i] = math.nan
        elif type(v) is float or type(v) is int:  # noqa: E721 - bool is an int: refuse it
            if type(v) is float and not math.isfinite(v):
                bad.append((i, f"Row {i}: a finite number is required, got {v}; send null "
                               "for a missing value."))
            try:
                out[i] = v
            except OverflowError:  # an int beyond float64's range (about 1.8e308)
                bad.append((i, f"Row {i}: the number {_describe(v)} is too large (at most "
                               "about 1.8e308)."))
                out[i] = math.nan
        else:
            bad.append((i, f"Row {i}: expected a number, got {_describe(v)}."))
            out[i] = math.nan
    return out, bad


def _boolean(values: list[Any]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    out = np.empty(len(values), dtype=float)
    bad = []
    for i, v in enumerate(values):
        if v is None or v is _ABSENT:
            out[i] = math.nan
            continue
        if isinstance(v, bool):
            out[i] = float(v)
            continue
        key = category_string(v) if isinstance(v, str | int | float) else None
        key = key.strip().lower() if key is not None else None
        if key in _TRUE:
            out[i] = 1.0
        elif key in _FALSE:
            out[i] = 0.0
        else:
            out[i] = math.nan
            bad.append((i, f"Row {i}: expected true/false (or yes/no, 1/0), got "
                           f"{_describe(v)}."))
    return out, bad


def _categorical(values: list[Any]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    out = np.empty(len(values), dtype=object)
    bad = []
    for i, v in enumerate(values):
        if v is None or v is _ABSENT:
            out[i] = None
        elif isinstance(v, str | int | float | bool):
            if isinstance(v, float) and not math.isfinite(v):
                bad.append((i, f"Row {i}: expected text or a number, got {v}."))
            out[i] = category_string(v)
        else:
            out[i] = None
            bad.append((i, f"Row {i}: expected text or a number, got {_describe(v)}."))
    return out, bad


def _datetime(values: list[Any]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    bad = []
    cells: list[Any] = []
    for i, v in enumerate(values):
        if v is None or v is _ABSENT:
            cells.append(None)
        elif isinstance(v, str):
            cells.append(v)
        else:
            cells.append(None)
            bad.append((i, f"Row {i}: expected a date as text (e.g. \"2024-03-01\"), got "
                           f"{_describe(v)}."))
    parsed = parse_datetimes(pd.Series(cells, dtype=object))
    for i, (cell, when) in enumerate(zip(cells, parsed, strict=True)):
        if cell is not None and pd.isna(when):
            bad.append((i, f"Row {i}: cannot read {_describe(cell)} as a date; send ISO "
                           "8601, e.g. \"2024-03-01\"."))
    return parsed.to_numpy(), bad


_CONVERT = {
    "numeric": _numeric,
    "boolean": _boolean,
    "categorical": _categorical,
    "datetime": _datetime,
}
