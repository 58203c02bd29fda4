"""Prediction input validation: every problem a client can make, found in one round trip."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from fleetlearn.data import MAX_PROBLEMS, ColumnSchema, InputError, Schema, parse_rows

SCHEMA = Schema(
    target="label",
    task="classification",
    columns=(
        ColumnSchema("x", "numeric", "float64", True),
        ColumnSchema("flag", "boolean", "str", False),
        ColumnSchema("color", "categorical", "str", True, ("blue", "green", "red")),
        ColumnSchema("when", "datetime", "str", False),
    ),
    classes=("a", "b"),
    dropped={"row_id": "ID-like"},
)
KNOWN_EXTRA = frozenset({"label", "row_id"})
GOOD = {"x": 1.5, "flag": "yes", "color": "red", "when": "2024-03-01"}


def _row(**changes: Any) -> dict[str, Any]:
    row = dict(GOOD, **changes)
    return {k: v for k, v in row.items() if v is not _DROP}


_DROP = object()


def _problems(body: Any, max_rows: int = 100) -> tuple[int, list[dict[str, Any]]]:
    with pytest.raises(InputError) as info:
        parse_rows(body, SCHEMA, max_rows=max_rows, known_extra=KNOWN_EXTRA)
    return info.value.status, [p.to_dict() for p in info.value.problems]


def _single(body: Any, max_rows: int = 100) -> dict[str, Any]:
    status, problems = _problems(body, max_rows)
    assert status == 422
    assert len(problems) == 1, problems
    return problems[0]


# ------------------------------------------------------------------ good input


def test_records_are_converted_per_column_kind() -> None:
    rows = parse_rows({"records": [
        GOOD,
        {"x": 2, "flag": False, "color": None, "when": "2024-03-02T10:30:00"},
        {"x": None, "flag": None, "color": "blue", "when": None},
    ]}, SCHEMA)
    assert rows.n == 3
    np.testing.assert_array_equal(rows.columns["x"], [1.5, 2.0, np.nan])
    np.testing.assert_array_equal(rows.columns["flag"], [1.0, 0.0, np.nan])
    assert rows.columns["color"].tolist() == ["red", None, "blue"]
    when = rows.columns["when"]
    assert when.dtype.kind == "M"
    assert when[0] == np.datetime64("2024-03-01")
    assert when[1] == np.datetime64("2024-03-02T10:30:00")
    assert np.isnat(when[2])


def test_both_body_layouts_give_the_same_rows() -> None:
    records = [GOOD, _row(x=None, color="green")]
    columns = ["when", "color", "flag", "x"]  # any column order
    data = [[r[c] for c in columns] for r in records]
    a = parse_rows({"records": records}, SCHEMA)
    b = parse_rows({"columns": columns, "data": data}, SCHEMA)
    assert a.n == b.n == 2
    for name in SCHEMA.feature_names:
        np.testing.assert_array_equal(a.columns[name], b.columns[name])


def test_a_key_missing_from_some_records_is_a_missing_value() -> None:
    rows = parse_rows({"records": [GOOD, _row(x=_DROP)]}, SCHEMA)
    np.testing.assert_array_equal(rows.columns["x"], [1.5, np.nan])


@pytest.mark.parametrize(("value", "expected"), [
    (True, 1.0), (False, 0.0), ("yes", 1.0), ("No", 0.0), (" TRUE ", 1.0), ("f", 0.0),
    (1, 1.0), (0, 0.0), ("1", 1.0), (0.0, 0.0), ("y", 1.0),
])
def test_boolean_spellings_training_accepted_are_accepted(value: Any, expected: float) -> None:
    rows = parse_rows({"records": [_row(flag=value)]}, SCHEMA)
    assert rows.columns["flag"][0] == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("red", "red"), (1, "1"), (1.0, "1"), ("1", "1"), (2.5, "2.5"), (True, "True"),
])
def test_categories_are_read_as_training_read_them(value: Any, expected: str) -> None:
    rows = parse_rows({"records": [_row(color=value)]}, SCHEMA)
    assert rows.columns["color"][0] == expected


def test_unseen_categories_are_accepted_and_counted_per_column() -> None:
    rows = parse_rows({"records": [_row(color="purple"), _row(color="red"),
                                   _row(color="teal"), _row(color=None)]}, SCHEMA)
    assert rows.columns["color"].tolist() == ["purple", "red", "teal", None]
    assert rows.unseen == {"color": 2}  # a missing value is not an unseen category


def test_known_values_count_no_unseen_category() -> None:
    assert parse_rows({"records": [GOOD]}, SCHEMA).unseen == {}


def test_target_and_dropped_columns_are_ignored_when_sent() -> None:
    rows = parse_rows({"records": [_row(label="a", row_id=17)]}, SCHEMA,
                      known_extra=KNOWN_EXTRA)
    assert set(rows.columns) == set(SCHEMA.feature_names)
    rows = parse_rows({"columns": ["x", "flag", "color", "when", "label"],
                       "data": [[1.0, "no", "red", "2024-01-01", "b"]]}, SCHEMA,
                      known_extra=KNOWN_EXTRA)
    assert rows.n == 1


def test_return_proba_is_an_allowed_body_field() -> None:
    assert parse_rows({"records": [GOOD], "return_proba": True}, SCHEMA).n == 1


# ------------------------------------------------------------------ columns


def test_every_missing_column_is_listed_with_its_kind() -> None:
    status, problems = _problems({"records": [{"x": 1.0}]})
    assert status == 422
    assert [(p["type"], p["loc"]) for p in problems] == [
        ("missing_column", ["body", "records", "flag"]),
        ("missing_column", ["body", "records", "color"]),
        ("missing_column", ["body", "records", "when"]),
    ]
    assert "Missing column 'color' (categorical)" in problems[1]["msg"]


def test_missing_column_in_columns_layout() -> None:
    p = _single({"columns": ["x", "flag", "color"], "data": [[1.0, "yes", "red"]]})
    assert p["type"] == "missing_column"
    assert p["loc"] == ["body", "columns", "when"]


def test_unknown_column_suggests_the_missing_one() -> None:
    status, problems = _problems({"records": [_row(color=_DROP, colour="red")]})
    assert status == 422
    kinds = {p["type"]: p for p in problems}
    assert set(kinds) == {"missing_column", "unknown_column"}
    unknown = kinds["unknown_column"]
    assert unknown["loc"] == ["body", "records", "colour"]
    assert "Unknown column 'colour'. Did you mean 'color'?" in unknown["msg"]
    assert "input_schema" in unknown["msg"]  # where to look up the features


def test_unknown_column_is_an_error_even_when_nothing_is_missing() -> None:
    p = _single({"records": [_row(extra_feature=3)]})
    assert p["type"] == "unknown_column"
    assert "'extra_feature'" in p["msg"]


def test_unknown_column_in_columns_layout() -> None:
    p = _single({"columns": ["x", "flag", "color", "when", "whem"],
                 "data": [[1.0, "yes", "red", "2024-01-01", 0]]})
    assert p["type"] == "unknown_column"
    assert p["loc"] == ["body", "columns", "whem"]


def test_duplicate_columns_are_refused() -> None:
    p = _single({"columns": ["x", "x", "flag", "color", "when"],
                 "data": [[1, 2, "yes", "red", "2024-01-01"]]})
    assert p["type"] == "duplicate"
    assert "'x'" in p["msg"]


def test_rows_of_the_wrong_length_are_each_named() -> None:
    status, problems = _problems({"columns": ["x", "flag", "color", "when"],
                                  "data": [[1, "yes", "red", "2024-01-01"], [1, "yes"],
                                           [1, "yes", "red", "2024-01-01", 9]]})
    assert status == 422
    assert [(p["type"], p["loc"]) for p in problems] == [
        ("length", ["body", "data", 1]), ("length", ["body", "data", 2])]
    assert "Row 1 has 2 values; 'columns' names 4" in problems[0]["msg"]


# ------------------------------------------------------------------ values


@pytest.mark.parametrize(("column", "value", "says"), [
    ("x", "1.5", "expected a number, got '1.5'"),
    ("x", [1], "expected a number"),
    ("x", {"v": 1}, "expected a number"),
    ("x", True, "expected a number, got True"),  # a bool is not a number here
    ("x", False, "expected a number, got False"),
    ("flag", "maybe", "expected true/false"),
    ("flag", 2, "expected true/false"),
    ("flag", 0.5, "expected true/false"),
    ("flag", ["yes"], "expected true/false"),
    ("color", {"name": "red"}, "expected text or a number"),
    ("color", ["red"], "expected text or a number"),
    ("when", 20240301, "expected a date as text"),
    ("when", True, "expected a date as text"),
    ("when", "not a date", "cannot read 'not a date' as a date"),
    ("when", "2024-13-45", "cannot read '2024-13-45' as a date"),
])
def test_wrong_type_for_the_column_kind(column: str, value: Any, says: str) -> None:
    p = _single({"records": [GOOD, _row(**{column: value})]})
    assert p["type"] == "type"
    assert p["loc"] == ["body", "records", 1, column]
    assert p["msg"].startswith("Row 1: ")
    assert says in p["msg"]


def test_wrong_type_in_columns_layout_points_at_the_cell() -> None:
    p = _single({"columns": ["x", "flag", "color", "when"],
                 "data": [[1.0, "yes", "red", "2024-01-01"], ["high", "no", "red", "2024-01-02"]]})
    assert p["loc"] == ["body", "data", 1, "x"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value: float) -> None:
    p = _single({"records": [_row(x=value)]})
    assert p["type"] == "type"
    assert "a finite number is required" in p["msg"]
    assert "send null for a missing value" in p["msg"]


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_category_is_refused(value: float) -> None:
    p = _single({"records": [_row(color=value)]})
    assert "expected text or a number" in p["msg"]


def test_every_bad_cell_is_reported_at_once() -> None:
    body = {"records": [_row(x="a", flag="maybe"), GOOD, _row(when="never")]}
    status, problems = _problems(body)
    assert status == 422
    assert {(p["loc"][2], p["loc"][3]) for p in problems} == {
        (0, "x"), (0, "flag"), (2, "when")}


def test_problem_list_is_capped_and_the_rest_counted() -> None:
    n = MAX_PROBLEMS + 30
    with pytest.raises(InputError) as info:
        parse_rows({"records": [_row(x="bad") for _ in range(n)]}, SCHEMA)
    assert len(info.value.problems) == MAX_PROBLEMS
    assert info.value.extra == 30


# ------------------------------------------------------------------ body shape


@pytest.mark.parametrize("body", [
    {"records": [GOOD] * 6},
    {"columns": list(GOOD), "data": [list(GOOD.values())] * 6},
])
def test_too_many_rows_is_413(body: dict[str, Any]) -> None:
    status, problems = _problems(body, max_rows=5)
    assert status == 413
    assert problems[0]["type"] == "too_many_rows"
    assert "6 rows is more than this server accepts per request (5)" in problems[0]["msg"]


def test_max_rows_itself_is_accepted() -> None:
    assert parse_rows({"records": [GOOD] * 5}, SCHEMA, max_rows=5).n == 5


@pytest.mark.parametrize("body", [{"records": []}, {"columns": list(GOOD), "data": []}])
def test_no_rows_is_an_error(body: dict[str, Any]) -> None:
    p = _single(body)
    assert p["type"] == "empty"
    assert "at least one" in p["msg"]


def test_unknown_body_fields_are_named() -> None:
    p = _single({"records": [GOOD], "rows": [], "proba": True})
    assert p["type"] == "extra_forbidden"
    assert "'proba', 'rows'" in p["msg"]


@pytest.mark.parametrize(("body", "kind"), [
    ([GOOD], "body"),
    ("records", "body"),
    ({}, "missing"),
    ({"columns": ["x"]}, "missing"),
    ({"records": [GOOD], "columns": ["x"], "data": [[1]]}, "body"),
    ({"records": GOOD}, "list_type"),
    ({"records": [GOOD, [1, 2]]}, "list_type"),
    ({"columns": "x", "data": [[1]]}, "list_type"),
    ({"columns": ["x", 3], "data": [[1, 2]]}, "list_type"),
    ({"columns": ["x"], "data": [1]}, "list_type"),
    ({"columns": ["x"], "data": {"x": 1}}, "list_type"),
])
def test_malformed_bodies_get_one_clear_problem(body: Any, kind: str) -> None:
    p = _single(body)
    assert p["type"] == kind
    assert p["msg"]
