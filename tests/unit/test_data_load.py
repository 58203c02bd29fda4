"""Reading tables: formats, folders of shards, and every way a file can be unusable."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetlearn.data import load_dataset, load_table
from fleetlearn.errors import DataFileNotFoundError, UnreadableTableError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1.5, 2.5, np.nan, 4.0, 5.5, 6.0],
            "color": ["red", "blue", "red", None, "blue", "red"],
            "label": ["a", "b", "a", "b", "a", "b"],
        }
    )


def test_csv_is_read_with_missing_values(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)

    table = load_table(path)

    assert list(table.columns) == ["x", "color", "label"]
    assert table.shape == (6, 3)
    assert table["x"].isna().sum() == 1
    assert table["color"].isna().sum() == 1
    assert table["label"].tolist() == frame["label"].tolist()


@pytest.mark.parametrize(
    ("name", "sep"), [("t.tsv", "\t"), ("semicolon.csv", ";"), ("pipe.txt", "|")]
)
def test_delimiter_follows_extension_or_header(tmp_path: Path, name: str, sep: str) -> None:
    path = tmp_path / name
    path.write_text(f"a{sep}b{sep}c\n1{sep}x{sep}2.5\n2{sep}y{sep}3.5\n")

    table = load_table(path)

    assert list(table.columns) == ["a", "b", "c"]
    assert table["c"].tolist() == [2.5, 3.5]


def test_csv_that_pyarrow_rejects_falls_back_to_c_engine(tmp_path: Path) -> None:
    # A quoted field spanning two lines: pyarrow's default reader refuses it.
    path = tmp_path / "quoted.csv"
    path.write_text('id,text,y\n1,"line one\nline two",3\n2,plain,4\n')

    table = load_table(path)

    assert table.shape == (2, 3)
    assert table.loc[0, "text"] == "line one\nline two"


def test_latin1_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("city,n\nK\xf6ln,1\nM\xfcnchen,2\n".encode("latin-1"))

    assert load_table(path)["city"].tolist() == ["K\xf6ln", "M\xfcnchen"]


def test_parquet_file_keeps_dtypes(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "t.parquet"
    frame.assign(when=pd.date_range("2024-01-01", periods=6)).to_parquet(path)

    table = load_table(path)

    assert table.shape == (6, 4)
    assert pd.api.types.is_datetime64_any_dtype(table["when"])
    assert table["x"].dtype == np.float64


def test_folder_of_parquet_shards_is_one_table(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    for year in (2023, 2024):
        for part in range(2):
            shard = folder / f"year={year}" / f"part-{part}.parquet"
            shard.parent.mkdir(parents=True, exist_ok=True)
            start = year * 100 + part * 10
            rows = pd.DataFrame({"x": np.arange(start, start + 5), "y": list("ababa")})
            rows.to_parquet(shard, index=False)
    (folder / "_SUCCESS").write_text("")  # Spark's marker file must be ignored
    (folder / "README.md").write_text("not a shard")

    table = load_table(folder)

    assert table.shape == (20, 3)
    assert sorted(table["year"].unique().tolist()) == [2023, 2024]  # Hive partitions
    # Shards are read in sorted order, so the same folder always gives the same rows.
    assert table["x"].tolist() == sorted(table["x"].tolist())


def test_dataset_name_and_source_default_to_file_and_folder(tmp_path: Path) -> None:
    rows = pd.DataFrame({"x": np.arange(10.0), "y": ["a", "b"] * 5})
    rows.to_csv(tmp_path / "iris.csv", index=False)
    (tmp_path / "shards").mkdir()
    rows.to_parquet(tmp_path / "shards" / "part-0.parquet", index=False)

    from_file = load_dataset(tmp_path / "iris.csv", target="y")
    from_folder = load_dataset(str(tmp_path / "shards"), target="y")
    renamed = load_dataset(tmp_path / "iris.csv", target="y", name="flowers")

    assert from_file.name == "iris"
    assert from_file.source == str((tmp_path / "iris.csv").resolve())
    assert os.path.isabs(from_file.source)
    assert from_folder.name == "shards"
    assert renamed.name == "flowers"


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataFileNotFoundError, match="nope.csv"):
        load_table(path)


def test_missing_file_suggests_a_close_name(tmp_path: Path) -> None:
    (tmp_path / "customers.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataFileNotFoundError, match="Did you mean 'customers.csv'"):
        load_table(tmp_path / "custmers.csv")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"\n\n  \n", "empty"),
        ("header_only.csv", b"a,b,c\n", "no rows"),
        ("garbage.csv", bytes(range(256)) * 20, "binary"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5,6\n", "as many fields"),
        ("parquet_in_disguise.csv", b"PAR1" + b"x" * 50, "Parquet file"),
        ("table.xlsx", b"PK\x03\x04whatever", "not supported"),
        ("noext", b"a,b\n1,2\n", "not supported"),
        ("broken.parquet", b"this is not parquet at all", "as Parquet"),
    ],
)
def test_unusable_files_raise_with_path_and_cause(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(UnreadableTableError, match=expected) as info:
        load_table(path)

    assert name in str(info.value)


def test_unknown_extension_lists_supported_formats(tmp_path: Path) -> None:
    path = tmp_path / "table.json"
    path.write_text("[]")
    with pytest.raises(UnreadableTableError) as info:
        load_table(path)
    for suffix in (".csv", ".tsv", ".txt", ".parquet", ".pq", "folder"):
        assert suffix in str(info.value)


def test_empty_parquet_and_folder_without_shards(tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    pd.DataFrame({"x": pd.Series([], dtype=float)}).to_parquet(empty)
    folder = tmp_path / "csvs"
    folder.mkdir()
    (folder / "a.csv").write_text("x\n1\n")

    with pytest.raises(UnreadableTableError, match="no rows"):
        load_table(empty)
    with pytest.raises(UnreadableTableError, match="no .parquet"):
        load_table(folder)


def test_date_columns_read_the_same_with_either_engine(tmp_path: Path) -> None:
    # pyarrow turns "2024-01-05" into date objects; they must come back as datetime64.
    path = tmp_path / "dates.csv"
    path.write_text("d,x\n2024-01-05,1\n,2\n2024-02-01,3\n")

    table = load_table(path)

    assert pd.api.types.is_datetime64_any_dtype(table["d"])
    assert table["d"].isna().tolist() == [False, True, False]
