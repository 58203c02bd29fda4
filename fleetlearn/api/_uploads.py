"""The server's data folder: streamed uploads, checked tables, and dataset names.

Not routes (those are :mod:`fleetlearn.api.routes.datasets`): the upload is parsed
chunk by chunk from the request stream (never held in memory: at most
:data:`FLUSH_BYTES`), written under a temporary name, sniffed (its content, not its
name, says whether it is Parquet or delimited text), checked with the training reader,
and only then linked in place under a name the server chooses (:func:`server_name`):
the client's file name is kept as a label only. Each upload's metadata (label, sha256,
columns, rows) is kept in ``<data>/.uploads/<name>.json``. It lives in ``api/`` because it speaks
HTTP: it reads a Starlette request and answers 409/413/415/422 as :class:`HttpError`.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import json
import os
import re
import unicodedata
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from fleetlearn.api.errors import HttpError
from fleetlearn.data import SUPPORTED_SUFFIXES, load_table, sniff_format
from fleetlearn.errors import (
    ConfigError,
    DataFileNotFoundError,
    FleetlearnError,
    UnreadableTableError,
    did_you_mean,
)

__all__ = [
    "FLUSH_BYTES",
    "label_of",
    "list_entries",
    "meta_dir",
    "receive",
    "resolve_dataset",
    "server_name",
    "store",
    "store_file",
]

#: Uploaded bytes kept in memory before they are written out (the rest is on disk).
FLUSH_BYTES = 1 << 20
#: Tables up to this size are read whole (exact row count); bigger ones are sampled.
FULL_READ_BYTES = 16 << 20
#: How much of a big text table is read to check it (cut at the last full line).
SAMPLE_BYTES = 1 << 20
#: Form fields of an upload besides the file.
_FIELDS = ("name",)
#: What a stored name's stem may hold (anything else becomes '_').
_SLUG_DROP = re.compile(r"[^A-Za-z0-9_-]+")
#: Longest stem the server gives a stored table (the label keeps the whole name).
SLUG_MAX = 64
#: Longest label kept (the client's file name, shown back, never used as a path).
LABEL_MAX = 255
_TEXT_SUFFIXES = tuple(s for s in SUPPORTED_SUFFIXES if s in (".csv", ".tsv", ".txt"))
_PARQUET_SUFFIXES = tuple(s for s in SUPPORTED_SUFFIXES if s not in _TEXT_SUFFIXES)


def label_of(raw: str) -> str:
    """The client's file name as a label: control characters dropped, at most 255."""
    return "".join(c for c in raw if unicodedata.category(c)[0] != "C").strip()[:LABEL_MAX]


def server_name(wanted: str, kind: str, digest: str | None = None) -> str:
    """The name the server stores an upload under, from a label and the sniffed kind.

    Only the last path component of ``wanted`` counts; its stem is reduced to ASCII
    letters, digits, ``_`` and ``-`` (at most :data:`SLUG_MAX`; ``table`` when nothing
    is left), and the suffix follows the content (``kind`` from
    :func:`fleetlearn.data.sniff_format`): the label's own suffix when it fits the
    content, else ``.parquet`` or ``.csv``. With ``digest``, the first 8 hex digits of
    the content's sha256 are added to the stem (another table already holds the name).

    Examples
    --------
    >>> server_name("../../etc/Ventes 2024 (été).CSV", "text")
    'Ventes_2024_ete.csv'
    >>> server_name("report.csv", "parquet", digest="9f3c21ab77")
    'report-9f3c21ab.parquet'
    """
    base = re.split(r"[/\\]", wanted)[-1]
    suffix = Path(base).suffix.lower()
    stem = base[: -len(suffix)] if suffix in SUPPORTED_SUFFIXES else base
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    slug = _SLUG_DROP.sub("_", ascii_stem).strip("_-")[:SLUG_MAX].strip("_-") or "table"
    fits = _PARQUET_SUFFIXES if kind == "parquet" else _TEXT_SUFFIXES
    if suffix not in fits:
        suffix = ".parquet" if kind == "parquet" else ".csv"
    return f"{slug}-{digest[:8]}{suffix}" if digest else f"{slug}{suffix}"


class _MultipartSink:
    """Receives a multipart body chunk by chunk: the file part to disk, hashed on the way.

    At most :data:`FLUSH_BYTES` of the file are held in memory at any time.
    """

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder, self.limit = folder, limit
        self.tmp = folder / f".upload-{uuid.uuid4().hex}.part"
        self.hasher = hashlib.sha256()
        self.size = 0
        self.filename: str | None = None  # the client's file name: a label, never a path
        self.fields: dict[str, bytearray] = {}
        self.pending = bytearray()
        self.too_large = False
        self._fh: Any = None
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value = bytearray(), bytearray()
        self._part: str | None = None  # "file", a field name, or None

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._data,
        }

    def _part_begin(self) -> None:
        self._headers, self._part = {}, None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field, self._value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is not None or name == "file":
            if name != "file":
                raise HttpError(422, f"The file part is called '{name}'; call it 'file' "
                               "(curl -F file=@table.csv).", "ConfigError")
            if self.filename is not None:
                raise HttpError(422, "Send one file per upload.", "ConfigError")
            self.filename = label_of(filename.decode("utf-8", "replace") if filename else "")
            self._part = "file"
        elif name in _FIELDS:
            self._part = name
            self.fields[name] = bytearray()
        else:
            raise HttpError(422, f"Unknown form field '{name[:50]}': send 'file' (the table) "
                           "and optionally 'name' (what to call it).", "ConfigError")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            if self.too_large:
                return  # drained, not kept: the caller answers 413 once the body is read
            self.size += end - start
            if self.size > self.limit:
                self.too_large = True
                self.pending.clear()
                return
            self.pending += data[start:end]
        elif self._part is not None:
            value = self.fields[self._part]
            value += data[start:end]
            if len(value) > 1024:
                raise HttpError(422, f"The form field '{self._part}' is longer than 1024 bytes.",
                               "ConfigError")

    def flush(self) -> None:
        """Write what is pending to the temporary file (called off the event loop)."""
        if not self.pending or self.too_large:
            return
        if self._fh is None:
            self._fh = open(self.tmp, "wb")  # noqa: SIM115 - closed in close()
        chunk = bytes(self.pending)
        self.pending.clear()
        self.hasher.update(chunk)
        self._fh.write(chunk)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        elif self.filename is not None and not self.too_large and not self.tmp.exists():
            self.tmp.touch()  # an empty upload: let the table check say so

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.tmp.unlink(missing_ok=True)


async def receive(request: Request, folder: Path, limit_mb: float) -> _MultipartSink:
    """Stream a multipart upload into ``folder`` (temporary name); 413 beyond the limit."""
    limit = int(limit_mb * 2**20)
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HttpError(415, "Upload the table as multipart/form-data with a 'file' part "
                       "(curl -F file=@table.csv URL).", "UnsupportedMediaType")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + (64 << 10):
        raise HttpError(413, _too_large(int(declared), limit_mb, exact=True), "TooLarge")
    sink = _MultipartSink(folder, limit)
    parser = MultipartParser(boundary, sink.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if len(sink.pending) >= FLUSH_BYTES:
                await asyncio.to_thread(sink.flush)
        parser.finalize()
        await asyncio.to_thread(sink.flush)
        await asyncio.to_thread(sink.close)
    except MultipartParseError as exc:
        sink.discard()
        raise HttpError(422, f"The body is not valid multipart/form-data: {exc}.",
                       "ConfigError") from exc
    except BaseException:
        sink.discard()
        raise
    if sink.too_large:
        sink.discard()
        raise HttpError(413, _too_large(sink.size, limit_mb), "TooLarge")
    if sink.filename is None:
        sink.discard()
        raise HttpError(422, "No file in the upload: send the table as a part named 'file' "
                       "(curl -F file=@table.csv URL).", "ConfigError")
    return sink


def _too_large(size: int, limit_mb: float, exact: bool = False) -> str:
    return (f"The upload is {size / 2**20:.1f} MiB{'' if exact else ' or more'}; this server "
            f"accepts datasets up "
            f"to {limit_mb:g} MiB (FLEETLEARN_SERVE_UPLOAD_MAX_MB). Split the table, or "
            "place it in the server's data folder directly.")


def _inspect_table(path: Path, shown: str) -> tuple[list[str], int | None]:
    """Columns and (when cheap) rows of a table; UnreadableTableError naming ``shown``."""
    try:
        if path.stat().st_size <= FULL_READ_BYTES:
            frame = load_table(path)
            return [str(c) for c in frame.columns], len(frame)
        if path.suffix.lower() in (".parquet", ".pq"):
            return _inspect_parquet(path)
        return _inspect_text_head(path), None
    except FleetlearnError as exc:
        text = str(exc)
        for form in (str(path.resolve()), str(path)):
            text = text.replace(form, shown)
        raise type(exc)(text) from None


def _inspect_parquet(path: Path) -> tuple[list[str], int | None]:
    try:
        pf = pq.ParquetFile(path)
        columns = list(pf.schema_arrow.names)
        rows = pf.metadata.num_rows
        if rows:
            next(pf.iter_batches(batch_size=64))  # the first rows decode
    except (OSError, pa.ArrowException, StopIteration) as exc:
        raise UnreadableTableError(f"Cannot read '{path}' as Parquet: "
                                   f"{str(exc).splitlines()[0][:300] if str(exc) else exc!r}. "
                                   "Expected a valid Parquet file.") from exc
    if not columns or not rows:
        raise UnreadableTableError(f"Cannot use '{path}': it has {len(columns)} column(s) and "
                                   f"{rows} row(s). Expected a header and data rows.")
    return columns, rows


def _inspect_text_head(path: Path) -> list[str]:
    """Read the first lines of a big text table with the training reader."""
    with path.open("rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    cut = head.rfind(b"\n")
    sample = path.with_name(f".sample-{uuid.uuid4().hex}{path.suffix}")
    try:
        sample.write_bytes(head[: cut + 1] if cut > 0 else head)
        frame = load_table(sample)
    except FleetlearnError as exc:
        raise type(exc)(str(exc).replace(str(sample.resolve()), str(path))) from None
    finally:
        sample.unlink(missing_ok=True)
    return [str(c) for c in frame.columns]


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(FLUSH_BYTES), b""):
            h.update(chunk)
    return h.hexdigest()


def meta_dir(data: Path) -> Path:
    return data / ".uploads"


def _read_meta(data: Path, name: str) -> dict[str, Any] | None:
    try:
        return json.loads((meta_dir(data) / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, path)


def _entry(data: Path, path: Path) -> dict[str, Any]:
    meta = _read_meta(data, path.name) or {}
    size = (sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir()
            else path.stat().st_size)
    return {"name": path.name, "label": meta.get("label"), "path": str(path), "bytes": size,
            "sha256": meta.get("sha256"), "columns": meta.get("columns"),
            "rows": meta.get("rows"), "uploaded_at": meta.get("uploaded_at")}


def _kind_of(path: Path, shown: str) -> str:
    with path.open("rb") as fh:
        head = fh.read(64 << 10)
    if not head.strip():
        return "text"  # the table check says it is empty
    try:
        return sniff_format(head, shown)
    except FleetlearnError as exc:
        raise HttpError(422, str(exc), type(exc).__name__) from None


def store(sink: _MultipartSink, data: Path, wanted: str, *,
          exact: bool = False) -> tuple[dict[str, Any], bool]:
    """Check the received table and put it in place; (record, created). Off the loop.

    The name is the server's (:func:`server_name` of ``wanted`` and the sniffed
    content). A name another table holds gets the content's hash added, unless
    ``exact`` (the client asked for that name with the ``name`` field): then it is a 409.
    The same content under the same name answers the stored copy.
    """
    digest = sink.hasher.hexdigest()
    shown = sink.filename or wanted or "the upload"
    try:
        staged = sink.tmp.with_name(f".upload-{uuid.uuid4().hex}.part")
        os.replace(sink.tmp, staged)
        sink.tmp = staged
        kind = _kind_of(staged, shown)
        for attempt in ("plain", "hashed"):
            name = server_name(wanted, kind, digest if attempt == "hashed" else None)
            final = data / name
            if not final.exists():
                break
            meta = _read_meta(data, name)
            existing = meta.get("sha256") if meta else None
            if existing is None and final.is_file():
                existing = _sha256_of(final)
            if existing == digest:
                return _entry(data, final), False
            if exact:
                raise HttpError(409, f"A dataset named '{name}' already exists with "
                               "different content. Upload this one under another name "
                               "(form field 'name'), or leave the field out and the server "
                               "picks a free one.", "Conflict")
        else:
            raise HttpError(409, f"A dataset named '{name}' already exists with different "
                           "content. Send this one with another 'name'.", "Conflict")
        linked = staged.with_name(f".upload-{uuid.uuid4().hex}{final.suffix}")
        os.replace(staged, linked)
        sink.tmp = linked
        columns, rows = _inspect_table(linked, shown)
        try:
            os.link(linked, final)  # atomic, and never replaces a file uploaded meanwhile
        except FileExistsError:
            return store(sink, data, wanted, exact=exact)
        except OSError:  # a filesystem without hard links
            if final.exists():
                return store(sink, data, wanted, exact=exact)
            os.replace(linked, final)
        record = {"name": name, "label": sink.filename, "path": str(final),
                  "bytes": sink.size, "sha256": digest, "columns": columns, "rows": rows,
                  "uploaded_at": datetime.now(UTC).isoformat(timespec="seconds")}
        _write_json(meta_dir(data) / f"{name}.json", record)
        return record, True
    finally:
        sink.discard()


def store_file(path: Path, data: Path, name: str) -> tuple[dict[str, Any], bool]:
    """Keep a table written by the server itself (an example) as an upload; (record,
    created). ``path`` is moved, so it must be on the data folder's filesystem."""
    sink = _MultipartSink(meta_dir(data), limit=0)
    os.replace(path, sink.tmp)
    sink.hasher = hashlib.sha256(sink.tmp.read_bytes())
    sink.size = sink.tmp.stat().st_size
    sink.filename = name
    return store(sink, data, name, exact=True)


def resolve_dataset(ref: str, data: Path) -> Path:
    """A dataset reference (uploaded name or path) as a path inside the data folder."""
    root = data.resolve()
    raw = Path(ref)
    try:
        path = (raw if raw.is_absolute() else root / raw).resolve()
        exists = path.exists()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long for the filesystem
        raise ConfigError(f"Dataset '{ref[:100]}' is not a usable file name ({exc}). See GET "
                          "/v1/datasets for the names.") from None
    if path != root and root not in path.parents:
        raise ConfigError(f"Dataset '{ref}' is outside the server's data folder ({root}): "
                          "upload it (POST /v1/datasets) and give its name.")
    if any(part.startswith(".") for part in path.relative_to(root).parts):
        exists = False  # the server's own bookkeeping (.uploads/), not a dataset
    if not exists:
        stems = sorted(p for p in root.glob(f"{glob.escape(raw.name)}.*")
                       if not p.name.startswith(".")) if root.is_dir() else []
        if len(stems) == 1 and raw.suffix == "":
            return stems[0]
        names = [p.name for p in root.iterdir()
                 if not p.name.startswith(".")] if root.is_dir() else []
        hint = did_you_mean(raw.name, names) if names else " No dataset is uploaded yet."
        raise DataFileNotFoundError(f"No dataset '{ref}' on the server.{hint} See GET "
                                    "/v1/datasets, or upload it with POST /v1/datasets.")
    return path


def list_entries(data: Path) -> list[dict[str, Any]]:
    """The tables in the data folder (uploads and files put there), by name."""
    rows = []
    if data.is_dir():
        for path in sorted(data.iterdir()):
            if path.name.startswith((".", "_")):
                continue
            if path.is_dir() or path.suffix.lower() in SUPPORTED_SUFFIXES:
                try:
                    rows.append(_entry(data, path))
                except OSError:  # removed while listing
                    continue
    return rows
