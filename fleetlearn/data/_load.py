"""Reading a table from CSV/TSV/TXT, a Parquet file, or a folder of Parquet shards."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from fleetlearn.errors import DataFileNotFoundError, UnreadableTableError, did_you_mean

__all__ = ["load_table", "SUPPORTED_SUFFIXES", "sniff_format"]

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
    kind = sniff_format(head, str(p))
    if kind == "parquet":
        raise UnreadableTableError(
            f"Cannot read '{p}' as delimited text: it is a Parquet file. Rename it to "
            f"'{p.with_suffix('.parquet').name}'."
        )
    encoding = "utf-16" if kind == "utf-16 text" else "utf-8"
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
            # index_col=False: a first data row longer than the header must not become
            # the index (that would drop its first value); the data loss pandas then
            # warns of is an error here.
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                return pd.read_csv(p, sep=sep, engine="c", encoding=enc, low_memory=False,
                                   index_col=False)
        except pd.errors.ParserWarning:
            errors.append("C parser: a row has more fields than the header")
            break
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


#: Leading bytes of formats people send instead of a table, and what to do instead.
_NOT_TABLES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a compressed archive (zip; .xlsx and .docx files are zip archives)"),
    (b"\x1f\x8b", "a compressed archive (gzip)"),
    (b"\xfd7zXZ\x00", "a compressed archive (xz)"),
    (b"7z\xbc\xaf\x27\x1c", "a compressed archive (7z)"),
    (b"\x28\xb5\x2f\xfd", "a compressed archive (zstd)"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls/.doc)"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x7fELF", "a program (ELF)"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow IPC file"),
    (b"Obj\x01", "an Avro file"),
)


def sniff_format(head: bytes, shown: str) -> str:
    """What the first bytes of a file say it is: ``parquet``, ``text`` or ``utf-16 text``.

    Decided by content, never by the file's name. Anything else (archives, office
    documents, images, programs, databases, JSON, HTML/XML, binary data) raises
    :class:`UnreadableTableError` naming ``shown``, what the content is, and what to
    send instead.

    Examples
    --------
    >>> sniff_format(b"x,y\\n1,2\\n", "t.csv")
    'text'
    >>> sniff_format(b"PAR1\\x15\\x04", "t.csv")
    'parquet'
    """
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16 text"  # Excel's "Unicode text" export
    for magic, what in _NOT_TABLES:
        if head.startswith(magic):
            fix = ("Decompress it first." if "compressed" in what
                   else "Export the table as CSV or Parquet and send that.")
            raise UnreadableTableError(f"Cannot read '{shown}': it is {what}, not a table. {fix}")
    if b"\x00" in head:
        raise UnreadableTableError(
            f"Cannot read '{shown}': it holds binary data, not delimited text. Expected "
            f"{_SUPPORTED_TEXT}."
        )
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start in (b"{", b"["):
        raise UnreadableTableError(
            f"Cannot read '{shown}': it is JSON, not a table. Convert it (e.g. "
            "pandas.read_json(...).to_csv(...)) and send the CSV."
        )
    if start == b"<":
        raise UnreadableTableError(
            f"Cannot read '{shown}': it is HTML or XML, not a table. Export the table as CSV "
            "or Parquet and send that."
        )
    return "text"


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
