"""Property tests (Hypothesis) for request validation: :func:`fleetlearn.data.parse_rows`.

Whatever a client sends ends in converted rows or an :class:`InputError` whose every
problem says where (``loc``), what (``msg``) and which kind (``type``), and fits a JSON
error body; never another exception. Both body layouts (records, columns + data, in any
column order) give the same rows.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetlearn.data import ColumnSchema, InputError, Rows, Schema, parse_rows

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: The problem kinds parse_rows may report; a new one must be added here on purpose.
PROBLEM_TYPES = {"body", "extra_forbidden", "list_type", "missing", "duplicate", "length",
                 "empty", "too_many_rows", "missing_column", "unknown_column", "type"}
KINDS = ("numeric", "boolean", "categorical", "datetime")
DTYPES = {"numeric": "float64", "boolean": "bool", "categorical": "object",
          "datetime": "datetime64[ns]"}
SETTINGS = settings(max_examples=150, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

names = st.text(min_size=1, max_size=12)  # any unicode: accents, emoji, RTL, spaces
json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)

valid_values = {
    "numeric": st.none() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False),
    "boolean": st.none() | st.booleans() | st.sampled_from(
        ["true", "False", "YES", "no", "1", "0", " y ", "t", "F", 0, 1, 1.0, 0.0]),
    "categorical": st.none() | st.text(max_size=20) | st.integers() | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False),
    "datetime": st.none() | st.datetimes(min_value=datetime(1900, 1, 1),
                                         max_value=datetime(2200, 12, 31)).map(
        lambda d: d.isoformat()),
}


@st.composite
def schemas(draw: st.DrawFn) -> Schema:
    cols = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    target = draw(names.filter(lambda n: n not in cols))
    return Schema(target, "regression", tuple(
        ColumnSchema(c, kind, DTYPES[kind], True) for c, kind in
        zip(cols, draw(st.lists(st.sampled_from(KINDS), min_size=len(cols),
                                max_size=len(cols))), strict=True)))


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[Schema, list[dict[str, Any]]]:
    schema = draw(schemas())
    n = draw(st.integers(1, 8))
    records = [{c.name: draw(valid_values[c.kind]) for c in schema.columns} for _ in range(n)]
    return schema, records


def _same(a: Rows, b: Rows) -> None:
    assert a.n == b.n
    assert a.columns.keys() == b.columns.keys()
    for name in a.columns:
        assert pd.Series(a.columns[name]).equals(pd.Series(b.columns[name])), name
    assert a.unseen == b.unseen


def _check_error(exc: InputError) -> None:
    assert exc.status in (413, 422)
    assert exc.problems
    for p in exc.problems:
        assert p.loc
        assert p.loc[0] == "body"
        assert isinstance(p.msg, str)
        assert p.msg.strip()
        assert p.type in PROBLEM_TYPES
        json.dumps(p.to_dict())  # what the API sends back must be JSON


@SETTINGS
@given(valid_requests(), st.randoms(use_true_random=False))
def test_records_and_columns_in_any_order_give_the_same_rows(
        request: tuple[Schema, list[dict[str, Any]]], rnd: Any) -> None:
    schema, records = request
    order = schema.feature_names
    rnd.shuffle(order)
    as_columns = {"columns": order, "data": [[r[c] for c in order] for r in records]}
    # A key left out of a record (but present in another) is a missing value, as null is.
    sparse = records[:1] + [{k: v for k, v in r.items() if v is not None or rnd.random() < 0.5}
                            for r in records[1:]]
    one, other = parse_rows({"records": sparse}, schema), parse_rows(as_columns, schema)
    _same(one, other)
    assert one.n == len(records)
    for col in schema.columns:
        got = one.columns[col.name]
        assert len(got) == len(records)
        sent = [r[col.name] for r in records]
        if col.kind == "numeric":
            assert [math.isnan(g) if s is None else g == s
                    for g, s in zip(got, sent, strict=True)] == [True] * len(sent)
        if col.kind == "boolean":
            assert [(s is None) == math.isnan(g) for g, s in zip(got, sent, strict=True)] \
                == [True] * len(sent)
            assert set(np.unique(got[~np.isnan(got)])) <= {0.0, 1.0}
        if col.kind == "categorical":
            assert [(s is None) == (g is None) for g, s in zip(got, sent, strict=True)] \
                == [True] * len(sent)
            assert all(isinstance(g, str) for g in got if g is not None)


@SETTINGS
@given(schemas(), json_values, st.integers(1, 20))
def test_any_json_body_ends_in_rows_or_a_clear_error(schema: Schema, body: Any,
                                                     max_rows: int) -> None:
    try:
        rows = parse_rows(body, schema, max_rows=max_rows)
    except InputError as exc:
        _check_error(exc)
    else:
        assert set(rows.columns) == set(schema.feature_names)
        assert all(len(v) == rows.n for v in rows.columns.values())


@SETTINGS
@given(schemas().flatmap(lambda s: st.tuples(
    st.just(s), st.lists(st.fixed_dictionaries({c.name: json_values for c in s.columns}),
                         min_size=1, max_size=5))),
    st.booleans())
def test_wrongly_typed_cells_are_named_by_row_and_column(request: tuple[Schema, list[Any]],
                                                         as_columns: bool) -> None:
    schema, records = request
    order = schema.feature_names
    body = ({"columns": order, "data": [[r[c] for c in order] for r in records]}
            if as_columns else {"records": records})
    try:
        rows = parse_rows(body, schema)
    except InputError as exc:
        _check_error(exc)
        where = "data" if as_columns else "records"
        for p in exc.problems:
            assert p.type == "type"
            _, at, row, column = p.loc
            assert (at, column in order) == (where, True)
            assert 0 <= row < len(records)
            assert f"Row {row}" in p.msg
    else:
        assert rows.n == len(records)


@SETTINGS
@given(valid_requests(), st.data())
def test_missing_and_extra_columns_are_each_named(request: tuple[Schema, list[Any]],
                                                  data: st.DataObject) -> None:
    schema, records = request
    features = schema.feature_names
    missing = data.draw(st.lists(st.sampled_from(features), unique=True, max_size=3))
    extra = data.draw(st.lists(names.filter(lambda n: n not in features and n != schema.target),
                               unique=True, max_size=3))
    sent = [{**{k: v for k, v in r.items() if k not in missing}, **dict.fromkeys(extra, 1)}
            for r in records]
    if not missing and not extra:
        assert parse_rows({"records": sent}, schema).n == len(records)
        return
    with pytest.raises(InputError) as caught:
        parse_rows({"records": sent}, schema)
    _check_error(caught.value)
    named = {(p.type, p.loc[-1]) for p in caught.value.problems}
    assert {("missing_column", c) for c in missing} <= named
    assert {("unknown_column", c) for c in extra} <= named
    # The target and known extras are accepted and ignored.
    kept = [{k: v for k, v in r.items() if k not in extra} for r in sent]
    if not missing:
        rows = parse_rows({"records": [{**r, schema.target: 0} for r in kept]}, schema,
                          known_extra=frozenset({schema.target}))
        assert rows.n == len(records)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, -(10**309)])
def test_non_finite_and_huge_numbers_are_a_type_problem(value: float) -> None:
    schema = Schema("y", "regression", (ColumnSchema("x", "numeric", "float64", True),))
    with pytest.raises(InputError) as caught:
        parse_rows({"records": [{"x": 1.5}, {"x": value}]}, schema)
    (problem,) = caught.value.problems
    assert (problem.loc, problem.type) == (("body", "records", 1, "x"), "type")
    assert "Row 1" in problem.msg
    assert parse_rows({"records": [{"x": 1.7e308}, {"x": 2**63}]}, schema).columns["x"][0] \
        == 1.7e308


def test_a_row_count_beyond_the_limit_is_413_whatever_the_layout() -> None:
    schema = Schema("y", "regression", (ColumnSchema("x", "numeric", "float64", True),))
    for body in ({"records": [{"x": 1}] * 11}, {"columns": ["x"], "data": [[1]] * 11}):
        with pytest.raises(InputError) as caught:
            parse_rows(body, schema, max_rows=10)
        assert caught.value.status == 413
        assert "11 rows" in caught.value.problems[0].msg
