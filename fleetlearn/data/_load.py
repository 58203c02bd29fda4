"""Reading a table from CSV/TSV/TXT, a Parquet file, or a folder of Parquet shards."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from fleetlearn.errors import DataFileNotFoundError, UnreadableTableError, did_you_mean

__all__ = ["load_table", "SUPPORTED_SUFFIXES"]

_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES: tuple[str, ...] = _TEXT_SUFFIXES + _PARQUET_SUFFIXES
_SUPPORTED_TEXT = ".csv, .tsv, .txt (delimited text), .parquet, .pq, or a folder of .parquet shards"
_SNIFF_BYTES = 64 * 1024


def load_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table from a delimited text file, a Parquet file or a folder of Parquet shards.

    Text files are read with pandas' pyarrow engine (the C engine is the fallback when
    pyarrow cannot parse the file). The delimiter of ``.csv``/``.txt`` files is taken
    from the header line (one of ``, ; | TAB``); ``.tsv`` is tab-separated. A folder is
    read as a Parquet dataset: every ``*.parquet``/``*.pq`` file below it in sorted
    order (hidden and ``_``-prefixed files skipped), with Hive partition folders
    (``year=2024/``) turned into columns.

    Parameters
    ----------
    path : str or os.PathLike
        File or folder to read.

    Returns
    -------
    pandas.DataFrame
        The table, with a fresh ``RangeIndex``. Date-only columns that pyarrow returns
        as Python ``date`` objects are converted to ``datetime64``.

    Raises
    ------
    DataFileNotFoundError
        The path does not exist.
    UnreadableTableError
        Empty file, no rows, no columns, malformed content or unsupported extension.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("x,y\\n1,a\\n2,b\\n")
    >>> load_table(p).shape
    (2, 2)
    """
    p = Path(path).expanduser()
    if not p.exists():
        hint = ""
        if p.parent.is_dir():
            near = sorted(c.name for c in p.parent.iterdir() if c.suffix in SUPPORTED_SUFFIXES)
            if near:
                hint = did_you_mean(p.name, near)
        raise DataFileNotFoundError(
            f"Data file '{p}' does not exist.{hint} Check the path (relative paths are "
            f"resolved from '{Path.cwd()}')."
        )
    p = p.resolve()
    if p.is_dir():
        frame = _read_parquet_folder(p)
    else:
        suffix = p.suffix.lower()
        if suffix in _TEXT_SUFFIXES:
            frame = _read_text(p, suffix)
        elif suffix in _PARQUET_SUFFIXES:
            frame = _read_parquet_file(p)
        else:
            raise UnreadableTableError(
                f"Cannot read '{p}': the extension '{p.suffix or '(none)'}' is not supported. "
                f"Supported: {_SUPPORTED_TEXT}. Convert the file or rename it."
            )
    _check_shape(frame, p)
    return _normalise_read_frame(frame)


def _read_text(p: Path, suffix: str) -> pd.DataFrame:
    with p.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head.strip():
        raise UnreadableTableError(
            f"Cannot read '{p}': the file is empty. Expected a header line and at least "
            "one row of data."
        )
    encoding = "utf-8"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"  # Excel's "Unicode text" export
    elif head.startswith(b"PAR1"):
        raise UnreadableTableError(
            f"Cannot read '{p}' as delimited text: it is a Parquet file. Rename it to "
            f"'{p.with_suffix('.parquet').name}'."
        )
    elif head.startswith(b"\x1f\x8b") or head.startswith(b"PK\x03\x04"):
        raise UnreadableTableError(
            f"Cannot read '{p}': it is a compressed archive (gzip/zip), not delimited text. "
            "Decompress it first."
        )
    elif b"\x00" in head:
        raise UnreadableTableError(
            f"Cannot read '{p}': it holds binary data, not delimited text. Expected "
            f"{_SUPPORTED_TEXT}."
        )
    sep = "\t" if suffix == ".tsv" else _sniff_delimiter(head, encoding)

    errors: list[str] = []
    if encoding == "utf-8":
        try:
            frame = pd.read_csv(p, sep=sep, engine="pyarrow")
            # pyarrow keeps invalid UTF-8 as bytes; the C engine decodes it as latin-1.
            if not _has_bytes(frame):
                return frame
            errors.append("pyarrow: invalid UTF-8")
        except pd.errors.EmptyDataError:
            _raise_no_columns(p)
        except (ValueError, pa.ArrowException) as exc:
            # pyarrow is strict (e.g. quoted newlines, ragged rows); let the C engine try.
            errors.append(f"pyarrow: {_first_line(exc)}")
    for enc in (encoding, "latin-1") if encoding == "utf-8" else (encoding,):
        try:
            return pd.read_csv(p, sep=sep, engine="c", encoding=enc, low_memory=False)
        except pd.errors.EmptyDataError:
            _raise_no_columns(p)
        except UnicodeDecodeError as exc:
            errors.append(f"{enc}: {_first_line(exc)}")
            continue
        except (ValueError, pd.errors.ParserError) as exc:
            errors.append(f"C parser: {_first_line(exc)}")
            break
    raise UnreadableTableError(
        f"Cannot read '{p}' as delimited text (separator {sep!r}): {'; '.join(errors)}. "
        "Check that every row has as many fields as the header and that quotes are closed."
    )


def _has_bytes(frame: pd.DataFrame) -> bool:
    return any(
        pd.api.types.infer_dtype(frame[c], skipna=True) == "bytes"
        for c in frame.columns
        if frame[c].dtype == object
    )


def _raise_no_columns(p: Path) -> None:
    raise UnreadableTableError(
        f"Cannot read '{p}': no columns found (the file holds only blank lines). Expected a "
        "header line and at least one row of data."
    )


def _sniff_delimiter(head: bytes, encoding: str) -> str:
    """Pick the delimiter that occurs most often in the header line (comma on ties)."""
    text = head.decode(encoding, errors="replace")
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] > 0 else ","


def _read_parquet_file(p: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(p)
    except (OSError, pa.ArrowException) as exc:
        raise UnreadableTableError(
            f"Cannot read '{p}' as Parquet: {_first_line(exc)}. Expected a valid Parquet file "
            "(e.g. written by pandas.DataFrame.to_parquet)."
        ) from exc
    return _to_pandas(table, p)


def _read_parquet_folder(p: Path) -> pd.DataFrame:
    files = sorted(
        f
        for f in p.rglob("*")
        if f.is_file()
        and f.suffix.lower() in _PARQUET_SUFFIXES
        and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts)
    )
    if not files:
        raise UnreadableTableError(
            f"Cannot read folder '{p}': it contains no .parquet or .pq files. A folder is read "
            f"as Parquet shards; for other formats pass the file itself ({_SUPPORTED_TEXT})."
        )
    try:
        dataset = pads.dataset(
            [str(f) for f in files],
            format="parquet",
            partitioning=pads.HivePartitioning.discover(infer_dictionary=False),
            partition_base_dir=str(p),
        )
        table = dataset.to_table()
    except (OSError, pa.ArrowException) as exc:
        raise UnreadableTableError(
            f"Cannot read folder '{p}' as Parquet shards ({len(files)} files): "
            f"{_first_line(exc)}. Every shard must be valid Parquet with the same columns."
        ) from exc
    return _to_pandas(table, p)


def _to_pandas(table: pa.Table, p: Path) -> pd.DataFrame:
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise UnreadableTableError(
            f"Cannot convert '{p}' to a table: {_first_line(exc)}. Use plain column types "
            "(numbers, strings, booleans, dates)."
        ) from exc


def _check_shape(frame: pd.DataFrame, p: Path) -> None:
    if frame.shape[1] == 0:
        raise UnreadableTableError(
            f"Cannot use '{p}': it has no columns. Expected a header and at least one row."
        )
    if frame.shape[0] == 0:
        raise UnreadableTableError(
            f"Cannot use '{p}': it has a header ({frame.shape[1]} columns) but no rows. "
            "Add data rows."
        )


def _normalise_read_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Make the frame independent of the reader that produced it.

    pyarrow returns date-only columns as objects holding ``datetime.date`` and nullable
    booleans as objects holding ``None``; convert them so both engines give the same
    frame (and so the fingerprint does not depend on which engine was used).
    """
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    for name in frame.columns:
        col = frame[name]
        if col.dtype != object:
            continue
        inferred = pd.api.types.infer_dtype(col, skipna=True)
        if inferred == "date":
            frame[name] = pd.to_datetime(col, errors="coerce")
        elif inferred == "boolean" and col.isna().any():
            frame[name] = col.where(col.notna(), np.nan)
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
