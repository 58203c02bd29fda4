"""Property tests (Hypothesis) for the table loader: :func:`fleetlearn.data.load_table`
and :func:`fleetlearn.data.load_dataset`.

Random bytes, any delimiter, ragged rows, huge fields and deeply nested Parquet types
each end in a valid table or a clear :class:`UnreadableTableError` (a
:class:`DataError` from ``load_dataset``) naming the file; never another exception,
never a hang (each example is bounded by Hypothesis' deadline).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetlearn.data import SUPPORTED_SUFFIXES, load_dataset, load_table, sniff_format
from fleetlearn.errors import DataError, UnreadableTableError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SETTINGS = settings(max_examples=120, derandomize=True, deadline=timedelta(seconds=10),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TEXT_SUFFIXES = (".csv", ".txt")


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="flprop-") as tmp:
        yield Path(tmp)


def _write(folder: Path, suffix: str, content: bytes) -> Path:
    path = folder / f"t{time.monotonic_ns()}{suffix}"
    path.write_bytes(content)
    return path


def _table_or_clear_error(path: Path) -> pd.DataFrame | None:
    """A valid table, or None after a clear UnreadableTableError; anything else fails."""
    try:
        frame = load_table(path)
    except UnreadableTableError as exc:
        message = str(exc)
        assert path.name in message
        assert "Cannot read" in message or "Cannot use" in message
        return None
    finally:
        path.unlink(missing_ok=True)
    assert frame.shape[0] >= 1
    assert frame.shape[1] >= 1
    assert isinstance(frame.index, pd.RangeIndex)
    return frame


@SETTINGS
@given(st.binary(max_size=4096), st.sampled_from(SUPPORTED_SUFFIXES))
def test_random_bytes_end_in_a_table_or_a_clear_error(folder: Path, content: bytes,
                                                      suffix: str) -> None:
    _table_or_clear_error(_write(folder, suffix, content))


@SETTINGS
@given(st.binary(max_size=512))
def test_random_bytes_after_a_parquet_magic_are_refused_clearly(folder: Path,
                                                                tail: bytes) -> None:
    assert _table_or_clear_error(_write(folder, ".parquet", b"PAR1" + tail)) is None


idents = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True)
cells = st.integers(-(10**6), 10**6).map(str) | st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True)


@st.composite
def delimited_tables(draw: st.DrawFn) -> tuple[str, list[str], list[list[str]]]:
    sep = draw(st.sampled_from([",", ";", "|", "\t"]))
    header = draw(st.lists(idents, min_size=2, max_size=6, unique_by=str.lower))
    rows = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)),
                         min_size=1, max_size=20))
    return sep, header, rows


@SETTINGS
@given(delimited_tables(), st.sampled_from(TEXT_SUFFIXES), st.sampled_from(["\n", "\r\n"]))
def test_any_delimiter_is_found_and_the_table_read_whole(
        folder: Path, table: tuple[str, list[str], list[list[str]]], suffix: str,
        newline: str) -> None:
    sep, header, rows = table
    text = newline.join(sep.join(r) for r in [header, *rows]) + newline
    frame = _table_or_clear_error(_write(folder, suffix, text.encode()))
    assert frame is not None
    assert list(frame.columns) == header
    assert frame.shape == (len(rows), len(header))
    assert [[str(v) for v in r] for r in frame.astype(str).values.tolist()] == rows


@SETTINGS
@given(delimited_tables(), st.data())
def test_ragged_rows_are_an_error_or_missing_values_never_shifted_data(
        folder: Path, table: tuple[str, list[str], list[list[str]]],
        data: st.DataObject) -> None:
    sep, header, rows = table
    ragged = [r[: data.draw(st.integers(1, len(r) + 3))] + ["9"] * data.draw(st.integers(0, 2))
              for r in rows]
    text = "\n".join(sep.join(r) for r in [header, *ragged]) + "\n"
    frame = _table_or_clear_error(_write(folder, ".csv", text.encode()))
    too_long = any(len(r) > len(header) for r in ragged)
    if too_long:
        assert frame is None  # a value would be dropped or shifted: refused
        return
    assert frame is not None
    assert list(frame.columns) == header
    assert len(frame) == len(rows)
    for got, sent in zip(frame.values.tolist(), ragged, strict=True):
        assert [_cell(v) for v in got[: len(sent)]] == sent  # values stay in their columns
        assert all(pd.isna(v) for v in got[len(sent):])  # short rows: missing values


def _cell(value: Any) -> str:
    """A read cell as it was written (an int column with a gap is read as floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_a_huge_field_is_read_whole(folder: Path) -> None:
    big = "x" * (32 << 20)
    path = _write(folder, ".csv", f"a,b\n1,{big}\n2,y\n".encode())
    frame = _table_or_clear_error(path)
    assert frame is not None
    assert frame.shape == (2, 2)
    assert len(frame["b"][0]) == len(big)


@pytest.mark.slow
def test_a_one_gigabyte_line_ends_in_a_table_or_a_clear_error(folder: Path) -> None:
    path = folder / "gig.csv"
    with path.open("wb") as fh:
        fh.write(b"a,b\n1,")
        chunk = b"y" * (64 << 20)
        for _ in range(16):
            fh.write(chunk)
        fh.write(b"\n2,z\n")
    frame = _table_or_clear_error(path)
    if frame is not None:
        assert frame.shape == (2, 2)
        assert len(frame["b"][0]) == 16 * len(chunk)


def _nested_type(depth: int, draw: st.DrawFn) -> pa.DataType:
    if depth == 0:
        return draw(st.sampled_from([pa.int64(), pa.float64(), pa.string(), pa.bool_(),
                                     pa.timestamp("us"), pa.binary(), pa.decimal128(10, 2)]))
    inner = _nested_type(depth - 1, draw)
    return draw(st.sampled_from([
        pa.list_(inner), pa.large_list(inner), pa.struct([("f", inner), ("g", pa.int32())]),
        pa.map_(pa.string(), inner)]))


def _value(kind: pa.DataType, draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return None
    if pa.types.is_struct(kind):
        return {kind.field(i).name: _value(kind.field(i).type, draw)
                for i in range(kind.num_fields)}
    if pa.types.is_map(kind):
        return [(f"k{i}", _value(kind.item_type, draw)) for i in range(draw(st.integers(0, 2)))]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return [_value(kind.value_type, draw) for _ in range(draw(st.integers(0, 2)))]
    if pa.types.is_integer(kind):
        return draw(st.integers(-(2**31), 2**31 - 1))
    if pa.types.is_floating(kind):
        return draw(st.floats(allow_nan=False))
    if pa.types.is_boolean(kind):
        return draw(st.booleans())
    if pa.types.is_timestamp(kind):
        return pd.Timestamp("2024-01-01") + pd.Timedelta(seconds=draw(st.integers(0, 10**6)))
    if pa.types.is_decimal(kind):
        from decimal import Decimal
        return Decimal(draw(st.integers(-(10**7), 10**7))) / 100
    if pa.types.is_binary(kind):
        return draw(st.binary(max_size=8))
    return draw(st.text(max_size=8))


@settings(max_examples=60, deadline=timedelta(seconds=20), derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.integers(1, 8))
def test_deeply_nested_parquet_types_end_in_a_dataset_or_a_clear_error(
        folder: Path, data: st.DataObject, depth: int) -> None:
    kind = _nested_type(depth, data.draw)
    n = 12
    nested = pa.array([_value(kind, data.draw) for _ in range(n)], type=kind)
    table = pa.table({"deep": nested, "x": pa.array([float(i) for i in range(n)]),
                      "y": pa.array([i % 2 for i in range(n)])})
    path = folder / f"n{time.monotonic_ns()}.parquet"
    pq.write_table(table, path)
    try:
        frame = load_table(path)
        assert frame.shape == (n, 3)
        try:
            dataset = load_dataset(path, target="y")
        except DataError as exc:
            message = str(exc)
            assert "deep" in message or path.name in message
        else:
            assert len(dataset.y) == n
            assert "deep" not in dataset.schema.feature_names  # not a usable feature
            assert "x" in dataset.schema.feature_names
    finally:
        path.unlink(missing_ok=True)


@SETTINGS
@given(st.binary(max_size=64))
def test_sniffing_is_decided_by_content_alone(head: bytes) -> None:
    try:
        kind = sniff_format(head, "upload.csv")
    except UnreadableTableError as exc:
        message = str(exc)
        assert "'upload.csv'" in message
        assert "Cannot read" in message
    else:
        assert kind in ("parquet", "text", "utf-16 text")
        assert (kind == "parquet") == head.startswith(b"PAR1")
        if kind == "text":
            assert b"\x00" not in head
