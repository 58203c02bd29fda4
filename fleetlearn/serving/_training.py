"""Training through the REST API: upload datasets, start runs, follow them, read leaderboards.

Routes (all under ``/v1``)::

    POST /datasets                 upload a CSV/TSV/Parquet table (multipart, role train)
    GET  /datasets                 the tables in the server's data folder (role read)
    POST /runs                     check a run, then start it in its own process (train)
    GET  /runs                     recent runs (read)
    GET  /runs/{id}                one run: status, progress (units and trials), failures
    GET  /runs/{id}/leaderboard    its leaderboard, as rows (read)
    POST /runs/{id}/cancel         stop it: marked interrupted, resumable (train)

A run never trains inside the server: everything is checked here first (the same
``prepare`` the CLI runs, in a worker thread), then ``python -m fleetlearn train`` runs
it in a new process group with a run id chosen here, so the answer (202) names the run
before the child has written it. The child's output goes to ``<home>/runs/<id>.log``; a
small ``<id>.json`` beside it records its pid and exit code, so any server process on
this machine can report on it (and cancel it) after a restart.

>>> from fleetlearn.serving._training import router
>>> sorted({r.path for r in router.routes})[:2]
['/v1/datasets', '/v1/runs']
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from fleetlearn.errors import (
    ConfigError,
    DataFileNotFoundError,
    FleetlearnError,
    NotFoundError,
    UnreadableTableError,
    did_you_mean,
)
from fleetlearn.registry import ApiKey
from fleetlearn.serving._app import (
    ERROR_RESPONSES,
    HttpError,
    ORJSONResponse,
    StateDep,
    _error,
    require,
)
from fleetlearn.serving._schemas import ErrorBody
from fleetlearn.serving._state import ServingState

__all__ = ["router"]

log = logging.getLogger("fleetlearn.serving")

Read = Annotated[ApiKey | None, Depends(require("read"))]
Train = Annotated[ApiKey | None, Depends(require("train"))]

#: Uploaded bytes kept in memory before they are written out (the rest is on disk).
FLUSH_BYTES = 1 << 20
#: Tables up to this size are read whole (exact row count); bigger ones are sampled.
FULL_READ_BYTES = 16 << 20
#: How much of a big text table is read to check it (cut at the last full line).
SAMPLE_BYTES = 1 << 20
#: How long a cancelled run may take to stop by itself (SIGINT: journal, mark
#: interrupted, shut its Ray down) before its process group is terminated.
CANCEL_GRACE_S = 20.0
#: Form fields of an upload besides the file.
_FIELDS = ("name",)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BRANCHES = {"str", "int", "float", "bool", "list", "dict", "DatasetRef"}


# ----------------------------------------------------------------- errors


class _Route(APIRoute):
    """Body validation errors in fleetlearn's shape: ``{"detail", "error", "errors"}``.

    FastAPI's default is ``{"detail": [...]}``; every other fleetlearn error carries a
    one-line ``detail`` a client can show as is.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _validation_error(exc)

        return route


def _validation_error(exc: RequestValidationError) -> Response:
    problems = []
    for e in exc.errors():
        # Drop pydantic's names of union branches ("str", "dict[...]"): not fields.
        loc = [p for p in e.get("loc", ()) if not isinstance(p, str) or not (
            "[" in p or p in _BRANCHES or p.startswith("function-"))]
        problems.append({"loc": loc, "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))})
    # Of a union's alternatives, the deepest problem is the one that says what is wrong.
    first = max(problems, key=lambda p: len(p["loc"])) if problems else {
        "loc": ["body"], "msg": "invalid"}
    part = str(first["loc"][0]) if first["loc"] else "body"
    where = ".".join(str(p) for p in first["loc"][1:]) or part
    what = {"query": "query parameter", "path": "path"}.get(part, "request body")
    detail = f"The {what} is not valid: {where}: {first['msg']}."
    if len(problems) > 1:
        detail += f" ({len(problems)} problems; see 'errors'.)"
    return _error(422, detail, "ValidationError", errors=problems)


router = APIRouter(prefix="/v1", tags=["training"], responses=ERROR_RESPONSES,
                   route_class=_Route)


# ----------------------------------------------------------------- schemas


class DatasetPublic(BaseModel):
    """A table in the server's data folder, usable by name in ``POST /v1/runs``."""

    name: str = Field(examples=["iris.csv"])
    path: str = Field(examples=["/home/me/.fleetlearn/data/iris.csv"],
                      description="Where the server keeps it (runs may give this path too).")
    bytes: int = Field(examples=[4551])
    sha256: str | None = Field(examples=["9f3c...e1"], description="Known for uploads.")
    columns: list[str] | None = Field(
        examples=[["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]])
    rows: int | None = Field(examples=[150], description="Null when counting it would mean "
                             "reading a big text file whole.")
    uploaded_at: str | None = Field(examples=["2025-01-31T12:00:00+00:00"])


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


class DatasetRef(BaseModel):
    """One table of a run, with options of its own."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, examples=["iris.csv"],
                         description="An uploaded name, or a path inside the data folder.")
    target: str | None = Field(None, examples=["species"])
    task: Literal["classification", "regression"] | None = None
    name: str | None = Field(None, examples=["iris"],
                             description="Name in the leaderboard and in model names.")
    models: list[str | dict[str, Any]] | None = Field(
        None, description="Models for this table only.")


_RUN_EXAMPLE = {
    "datasets": ["iris.csv"], "target": "species",
    "models": ["logistic_regression", "random_forest:n_estimators=100"],
    "folds": 5, "seed": 0, "name": "iris-baseline",
}


class RunCreate(BaseModel):
    """A training run: the options of ``fleetlearn train``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_RUN_EXAMPLE]})

    datasets: list[str | DatasetRef] = Field(
        min_length=1, description="Uploaded names (POST /v1/datasets) or paths inside the "
        "server's data folder; an entry may be an object with its own target, task, models.")
    target: str | dict[str, str] | None = Field(
        None, description="The target column of every table, or {dataset: column}.")
    task: Literal["classification", "regression"] | None = Field(
        None, description="Detected from the target by default.")
    models: list[str | dict[str, Any]] | None = Field(
        None, description="As on the command line: 'random_forest', "
        "'knn:n_neighbors=7', 'sklearn.ensemble.AdaBoostClassifier'. The task's default "
        "set when omitted (see 'fleetlearn catalog').")
    folds: int = Field(5, description="Cross-validation folds (at least 2).")
    test_size: float = Field(0.2, description="Held-out test fraction, in (0, 1).")
    metric: str | dict[Literal["classification", "regression"], str] | None = Field(
        None, description="Primary metric (accuracy / r2 by default), or {task: metric}.")
    seed: int = Field(0, ge=-(2**31), lt=2**31, description="Same seed, same scores.")
    schedule: Literal["concurrent", "sequential"] = "concurrent"
    curves: bool = Field(True, description="Learning curves for models without "
                         "per-iteration metrics.")
    name: str | None = Field(None, max_length=200, examples=["iris-baseline"])


class RunStarted(BaseModel):
    """A run that passed every check and is starting in its own process."""

    id: str = Field(examples=["3f2a9c01b7de"])
    status: str = Field(examples=["starting"])
    units_total: int = Field(examples=[28], description="Units the run will train "
                             "(folds, final fits, learning curves).")
    warnings: list[str] = Field(examples=[["dropped column 'id': an identifier"]])
    log: str = Field(description="The training process's output, on the server.")


class DatasetProgress(BaseModel):
    units_done: int
    units_total: int


class UnitFailure(BaseModel):
    dataset: str
    model: str
    unit: str = Field(examples=["cv2"])
    error: str


class RunProgress(BaseModel):
    """Units are folds, final fits and learning curves; a trial is one model on one table."""

    units_done: int = Field(examples=[12])
    units_total: int = Field(examples=[28])
    trials_done: int = Field(examples=[2])
    trials_total: int = Field(examples=[5])
    fraction: float = Field(examples=[0.43])
    datasets: dict[str, DatasetProgress]
    failures: list[UnitFailure]


class ProcessPublic(BaseModel):
    pid: int
    running: bool
    exit_code: int | None
    log: str


class RunPublic(BaseModel):
    """A run: status, progress, and the training process when this server started it.

    ``status``: ``running``, ``finished``, ``failed``, ``interrupted`` (resumable with
    ``fleetlearn train --resume ID``), or, before the training process has recorded the
    run, ``starting`` and ``cancelled``.
    """

    model_config = ConfigDict(extra="allow")

    id: str = Field(examples=["3f2a9c01b7de"])
    name: str | None = Field(examples=["iris-baseline"])
    status: str = Field(examples=["running"])
    error: str | None = None
    seed: int | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    datasets: list[dict[str, Any]] = Field(default_factory=list, examples=[[
        {"name": "iris", "rows": 150, "features": 4, "task": "classification",
         "target": "species"}]])
    progress: RunProgress | None = None
    config: dict[str, Any] | None = None
    process: ProcessPublic | None = None


class RunSummary(BaseModel):
    id: str
    name: str | None
    status: str
    created_at: str | None
    finished_at: str | None
    error: str | None
    datasets: list[str]


class RunsPublic(BaseModel):
    data: list[RunSummary]
    count: int


class LeaderboardRow(BaseModel):
    """One model on one table, ranked by the metric (NaN and missing values are null)."""

    model_config = ConfigDict(extra="allow")

    rank: float | None = Field(examples=[1])
    dataset: str = Field(examples=["iris"])
    metric: str = Field(examples=["accuracy"])
    model: str = Field(examples=["random_forest"])
    cv_mean: float | None = Field(examples=[0.96])
    cv_std: float | None = Field(examples=[0.02])
    test: float | None = Field(examples=[0.97])
    status: str = Field(examples=["ok"])


class LeaderboardPublic(BaseModel):
    run_id: str
    status: str
    rows: list[LeaderboardRow]


# ----------------------------------------------------------------- uploads


def _check_name(raw: str, what: str) -> str:
    """A file name safe to join to the data folder, or a 422 naming the problem."""
    from fleetlearn.data import SUPPORTED_SUFFIXES

    name = raw.strip()
    if any(c in name for c in "/\\\x00") or name in ("", ".", "..") or ".." in name:
        raise HttpError(422, f"The {what} '{raw[:100]}' is not a plain file name (no folders, "
                       "'..' or separators). Send the file itself, named like 'sales_2024.csv'.",
                       "ConfigError")
    if not _NAME_RE.fullmatch(name):
        raise HttpError(422, f"The {what} '{name[:100]}' may hold letters, digits, '_', '.' "
                       "and '-' only, start with a letter or digit, and be at most 128 "
                       "characters. Rename the file, or send a 'name' field.", "ConfigError")
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise HttpError(422, f"The {what} '{name}' must end in one of "
                       f"{', '.join(SUPPORTED_SUFFIXES)} (CSV, TSV or Parquet).", "ConfigError")
    return name


class _MultipartSink:
    """Receives a multipart body chunk by chunk: the file part to disk, hashed on the way.

    At most :data:`FLUSH_BYTES` of the file are held in memory at any time.
    """

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder, self.limit = folder, limit
        self.tmp = folder / f".upload-{uuid.uuid4().hex}.part"
        self.hasher = hashlib.sha256()
        self.size = 0
        self.filename: str | None = None
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
        from python_multipart.multipart import parse_options_header

        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is not None or name == "file":
            if name != "file":
                raise HttpError(422, f"The file part is called '{name}'; call it 'file' "
                               "(curl -F file=@table.csv).", "ConfigError")
            if self.filename is not None:
                raise HttpError(422, "Send one file per upload.", "ConfigError")
            self.filename = _check_name(filename.decode("utf-8", "replace") if filename
                                        else "", "file name")
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


async def _receive(request: Request, folder: Path, limit_mb: float) -> _MultipartSink:
    """Stream a multipart upload into ``folder`` (temporary name); 413 beyond the limit."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

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
    from fleetlearn.data import load_table

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
    import pyarrow as pa
    import pyarrow.parquet as pq

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
    from fleetlearn.data import load_table

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


def _meta_dir(data: Path) -> Path:
    return data / ".uploads"


def _read_meta(data: Path, name: str) -> dict[str, Any] | None:
    try:
        return json.loads((_meta_dir(data) / f"{name}.json").read_text())
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
    return {"name": path.name, "path": str(path), "bytes": size,
            "sha256": meta.get("sha256"), "columns": meta.get("columns"),
            "rows": meta.get("rows"), "uploaded_at": meta.get("uploaded_at")}


def _store(sink: _MultipartSink, data: Path, name: str) -> tuple[dict[str, Any], bool]:
    """Check the received table and put it in place; (record, created). Off the loop."""
    final = data / name
    digest = sink.hasher.hexdigest()
    try:
        if final.exists():
            meta = _read_meta(data, name)
            existing = meta.get("sha256") if meta else None
            if existing is None and final.is_file():
                existing = _sha256_of(final)
            if existing == digest:
                return _entry(data, final), False
            raise HttpError(409, f"A dataset named '{name}' already exists with different "
                           "content. Upload this one under another name (form field 'name'), "
                           "or use the existing one.", "Conflict")
        staged = sink.tmp.with_name(f".upload-{uuid.uuid4().hex}{Path(name).suffix}")
        os.replace(sink.tmp, staged)
        sink.tmp = staged
        columns, rows = _inspect_table(staged, name)
        try:
            os.link(staged, final)  # atomic, and never replaces a file uploaded meanwhile
        except FileExistsError:
            return _store(sink, data, name)
        except OSError:  # a filesystem without hard links
            if final.exists():
                return _store(sink, data, name)
            os.replace(staged, final)
        record = {"name": name, "path": str(final), "bytes": sink.size, "sha256": digest,
                  "columns": columns, "rows": rows,
                  "uploaded_at": datetime.now(UTC).isoformat(timespec="seconds")}
        _write_json(_meta_dir(data) / f"{name}.json", record)
        return record, True
    finally:
        sink.discard()


@router.post(
    "/datasets", response_model=DatasetPublic, status_code=201,
    summary="Upload a dataset (CSV, TSV or Parquet) to train on",
    description="multipart/form-data with a `file` part and an optional `name` field "
    "(`curl -F file=@iris.csv`). The table is checked (read with the training reader) before "
    "it is kept; an unreadable or empty file is refused and not kept. Uploading the same "
    "content under the same name again answers 200 with the stored copy; different content "
    "under a taken name is a 409. Stored files are never replaced, so a run's data stays "
    "as it was trained.",
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"},
            "name": {"type": "string", "description": "Name to keep it under (the "
                     "file's name by default); a missing suffix is taken from the file."}}}}}}},
    responses={200: {"model": DatasetPublic, "description": "Already stored (same content)."},
               409: {"model": ErrorBody}, 413: {"model": ErrorBody}, 415: {"model": ErrorBody},
               422: {"model": ErrorBody}},
)
async def upload_dataset(request: Request, state: StateDep, _: Train) -> Any:
    data = state.settings.data_path
    await asyncio.to_thread(_meta_dir(data).mkdir, parents=True, exist_ok=True)
    try:
        sink = await _receive(request, _meta_dir(data), state.settings.upload_max_mb)
    except ClientDisconnect:
        return Response(status_code=400)
    try:
        assert sink.filename is not None
        name = sink.filename
        if "name" in sink.fields:
            wanted = sink.fields["name"].decode("utf-8", "replace").strip()
            if wanted:
                if Path(wanted).suffix.lower() != Path(name).suffix.lower():
                    wanted += Path(name).suffix
                name = _check_name(wanted, "name")
    except BaseException:
        sink.discard()
        raise
    record, created = await asyncio.to_thread(_store, sink, data, name)
    return ORJSONResponse(record, status_code=201 if created else 200)


@router.get("/datasets", response_model=DatasetsPublic,
            summary="The tables in the server's data folder (uploads and files put there)")
def list_datasets(state: StateDep, _: Read) -> dict[str, Any]:
    from fleetlearn.data import SUPPORTED_SUFFIXES

    data = state.settings.data_path
    rows = []
    if data.is_dir():
        for path in sorted(data.iterdir()):
            if path.name.startswith((".", "_")):
                continue
            if path.is_dir() or path.suffix.lower() in SUPPORTED_SUFFIXES:
                with contextlib.suppress(OSError):  # removed while listing
                    rows.append(_entry(data, path))
    return {"data": rows, "count": len(rows)}


# ----------------------------------------------------------------- runs: checks


def _resolve_dataset(ref: str, data: Path) -> Path:
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


def _target_of(ref: str, path: Path, entry: DatasetRef | None, target: Any) -> str:
    if entry is not None and entry.target:
        return entry.target
    if isinstance(target, str) and target:
        return target
    if isinstance(target, dict):
        for key in (ref, path.name, path.stem, str(path), entry.name if entry else None, "*"):
            if key is not None and key in target:
                return target[key]
    raise ConfigError(f"No target column for dataset '{ref}': give \"target\": COLUMN for "
                      f"every table, or {{\"{ref}\": COLUMN}}.")


def run_config_from(body: RunCreate, data: Path) -> Any:
    """The :class:`~fleetlearn.training.RunConfig` of a request (ConfigError when bad)."""
    from fleetlearn.training import DatasetConfig, RunConfig

    entries = []
    for item in body.datasets:
        entry = item if isinstance(item, DatasetRef) else None
        ref = entry.dataset if entry else str(item)
        path = _resolve_dataset(ref, data)
        entries.append(DatasetConfig(
            path=str(path), target=_target_of(ref, path, entry, body.target),
            task=(entry.task if entry and entry.task else body.task),
            name=entry.name if entry else None,
            models=entry.models if entry else None))
    try:
        return RunConfig(datasets=entries, models=body.models, folds=body.folds,
                         test_size=body.test_size, metric=body.metric, seed=body.seed,
                         schedule=body.schedule, curves=body.curves, name=body.name)
    except TypeError as exc:  # a value of the wrong kind that RunConfig compares
        raise ConfigError(f"Invalid run options: {exc}.") from exc


def _count_units(prepared: list[Any], config: Any) -> int:
    from fleetlearn.training._execute import run_units

    return len(run_units(prepared, config))


# ----------------------------------------------------------------- runs: processes


@dataclass
class _Child:
    """A training process this server started."""

    run_id: str
    proc: subprocess.Popen[bytes]
    log: Path
    info: Path
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False


def _last_error(log: Path) -> str | None:
    """The line of a training log that says why it stopped (``error: ...`` first)."""
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [_ANSI_RE.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:"):].strip()[:1000]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception|Interrupt)\b", line):
            return line[:1000]
    return lines[-1][:1000] if lines else None


class _Launcher:
    """Starts ``fleetlearn train`` processes and keeps track of them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.children: dict[str, _Child] = {}
        self.lock = threading.Lock()

    def start(self, config: Any, state: ServingState) -> _Child:
        import yaml

        self.folder.mkdir(parents=True, exist_ok=True)
        run_id = uuid.uuid4().hex[:12]
        run_file = self.folder / f"{run_id}.yaml"
        log = self.folder / f"{run_id}.log"
        info = self.folder / f"{run_id}.json"
        run_file.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        cmd = [sys.executable, "-m", "fleetlearn", "train", "--config", str(run_file),
               "--run-id", run_id, "--quiet"]
        if state.settings.ray_address:
            cmd += ["--address", state.settings.ray_address]
        env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="120",
                   FLEETLEARN_ARTIFACTS=str(state.registry.artifacts.root))
        # Through the environment, not argv: a PostgreSQL password stays out of 'ps'.
        url = state.settings.registry_url or (state.registry.url
                                              if "***" not in state.registry.url else None)
        if url:
            env["FLEETLEARN_REGISTRY_URL"] = url
        with log.open("ab") as out:
            out.write(f"$ {' '.join(cmd)}\n".encode())
            out.flush()
            # A new session: Ctrl-C on the server does not reach it, and cancel can stop
            # the whole group (the driver and an embedded Ray it started).
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.folder, env=env,
                                    start_new_session=True)
        child = _Child(run_id, proc, log, info)
        _write_json(info, {"id": run_id, "pid": proc.pid, "log": str(log),
                           "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                           "exit_code": None, "cancelled": False, "error": None})
        with self.lock:
            self.children[run_id] = child
        threading.Thread(target=self._watch, args=(child, state), daemon=True,
                         name=f"fleetlearn-run-{run_id}").start()
        return child

    def _watch(self, child: _Child, state: ServingState) -> None:
        code = child.proc.wait()
        error = _last_error(child.log) if code != 0 else None
        info = self.read_info(child.run_id) or {}
        info.update(exit_code=code, error=error, cancelled=child.cancelled)
        with contextlib.suppress(OSError):
            _write_json(child.info, info)
        try:
            _settle(state, child.run_id, code, error, child.cancelled)
        except Exception as exc:  # noqa: BLE001 - a registry hiccup must not kill the thread
            log.warning("run %s: could not record how its process ended: %s", child.run_id, exc)
        child.done.set()

    def read_info(self, run_id: str) -> dict[str, Any] | None:
        if not re.fullmatch(r"[0-9a-f]{12}", run_id):
            return None
        try:
            return json.loads((self.folder / f"{run_id}.json").read_text())
        except (OSError, ValueError):
            return None

    def process(self, run_id: str) -> dict[str, Any] | None:
        """The training process of a run: pid, running, exit code, log; None if unknown."""
        with self.lock:
            child = self.children.get(run_id)
        if child is not None:
            code = child.proc.poll()
            return {"pid": child.proc.pid, "running": code is None, "exit_code": code,
                    "log": str(child.log), "cancelled": child.cancelled,
                    "error": _last_error(child.log) if code not in (None, 0) else None}
        info = self.read_info(run_id)
        if info is None:
            return None
        running = info.get("exit_code") is None and _alive(int(info["pid"]), run_id)
        return {"pid": int(info["pid"]), "running": running, "exit_code": info.get("exit_code"),
                "log": info.get("log", ""), "cancelled": bool(info.get("cancelled")),
                "error": info.get("error")}

    def starting(self) -> list[str]:
        with self.lock:
            return [rid for rid, c in self.children.items() if c.proc.poll() is None]

    def cancel(self, run_id: str, state: ServingState) -> bool:
        """Stop a run's process (SIGINT, then its group); False when none is running."""
        with self.lock:
            child = self.children.get(run_id)
        if child is not None:
            if child.proc.poll() is not None:
                return False
            child.cancelled = True
            pid = child.proc.pid

            def exited() -> bool:
                return child.proc.poll() is not None
        else:
            info = self.read_info(run_id)
            if info is None or info.get("exit_code") is not None:
                return False
            pid = int(info["pid"])
            if not _alive(pid, run_id):
                return False
            info["cancelled"] = True
            _write_json(self.folder / f"{run_id}.json", info)

            def exited() -> bool:
                return not _alive(pid, run_id)

        # SIGINT first: the driver journals what finished, marks the run interrupted and
        # shuts down the Ray it started. Only then force the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        for sig, wait_s in ((None, CANCEL_GRACE_S), (signal.SIGTERM, 5.0),
                            (signal.SIGKILL, 5.0)):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)
            deadline = time.monotonic() + wait_s
            while not exited() and time.monotonic() < deadline:
                time.sleep(0.1)
            if exited():
                break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)  # leftovers of an embedded Ray, if any
        if child is not None:
            child.done.wait(10)
        else:
            _settle(state, run_id, None, None, cancelled=True)
        return True


def _alive(pid: int, run_id: str) -> bool:
    """Whether ``pid`` is still the training process of ``run_id`` (pids get reused)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and run_id in " ".join(proc.cmdline())
    except (psutil.Error, OSError):
        return False


def _settle(state: ServingState, run_id: str, code: int | None, error: str | None,
            cancelled: bool) -> None:
    """A run whose process is gone but still says 'running': record how it ended."""
    try:
        run = state.registry.get_run(run_id)
    except NotFoundError:
        return
    if run.status != "running":
        return
    if cancelled:
        state.registry.set_run_status(run_id, "interrupted", error="cancelled through the API")
    else:
        state.registry.set_run_status(
            run_id, "failed", error=f"the training process exited with code {code}"
            + (f": {error}" if error else "") + "; resume with 'fleetlearn train --resume "
            f"{run_id}'")


def _launcher(request: Request) -> _Launcher:
    app: FastAPI = request.app
    launcher = getattr(app.state, "fleetlearn_training", None)
    if launcher is None:
        from fleetlearn.config import fleetlearn_home

        launcher = _Launcher(fleetlearn_home() / "runs")
        app.state.fleetlearn_training = launcher
    return launcher


LauncherDep = Annotated[_Launcher, Depends(_launcher)]


# ----------------------------------------------------------------- runs: views


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_progress(registry: Any, run: Any) -> dict[str, Any]:
    """Units and trials done of a run, per dataset, with its failed units.

    The total is planned the way training plans it (``plan_units``): per trial, the CV
    folds, the final fit, and a learning-curve unit when curves are on and the model has
    no per-iteration metric.
    """
    from fleetlearn.training._plan import plan_run_units

    config = run.config or {}
    names = {d.id: d.name for d in registry.run_datasets(run.id)}
    trials = registry.list_trials(run.id)
    models: dict[str, list[tuple[str, Any]]] = {}
    for t in trials:
        dname = names.get(t.dataset_id, str(t.dataset_id))
        models.setdefault(dname, []).append((t.model_name, (t.spec or {}).get("iterative")))
    planned = plan_run_units(models, int(config.get("folds") or 0),
                             bool(config.get("final_fit", True)),
                             bool(config.get("curves", True)))
    per_trial: dict[tuple[str, str], int] = {}
    for u in planned:
        per_trial[(u.dataset, u.model)] = per_trial.get((u.dataset, u.model), 0) + 1
    datasets = {d: {"units_done": 0, "units_total": 0} for d in models}
    for u in planned:
        datasets[u.dataset]["units_total"] += 1
    failures = []
    units_done = trials_done = 0
    for t in trials:
        dname = names.get(t.dataset_id, str(t.dataset_id))
        done = len(t.units)
        units_done += done
        datasets[dname]["units_done"] += done
        trials_done += done >= per_trial.get((dname, t.model_name), 0)
        for unit_name, u in sorted(t.units.items()):
            if u.status != "ok":
                first = ((u.error or "unknown error").splitlines() or [""])[0]
                failures.append({"dataset": dname, "model": t.model_name, "unit": unit_name,
                                 "error": first[:500]})
    total = len(planned)
    return {"units_done": units_done, "units_total": total, "trials_done": trials_done,
            "trials_total": len(trials), "fraction": round(units_done / total, 4) if total else 0.0,
            "datasets": datasets, "failures": failures}


def _process_public(proc: dict[str, Any] | None) -> dict[str, Any] | None:
    if proc is None:
        return None
    return {k: proc[k] for k in ("pid", "running", "exit_code", "log")}


def _run_public(state: ServingState, launcher: _Launcher, run_id: str) -> dict[str, Any]:
    try:
        run = state.registry.get_run(run_id)
    except NotFoundError:
        proc = launcher.process(run_id)
        if proc is None:
            raise
        # Not recorded yet: the process is still checking its data and joining Ray, or it
        # stopped before it could record the run.
        if proc["running"]:
            status, error = "starting", None
        elif proc["cancelled"]:
            status, error = "cancelled", "cancelled through the API before the run started"
        else:
            status = "failed"
            error = proc["error"] or f"the training process exited with code {proc['exit_code']}"
        return {"id": run_id, "name": None, "status": status, "error": error,
                "process": _process_public(proc)}
    datasets = [{"name": d.name, "rows": d.n_rows, "features": d.n_features, "task": d.task,
                 "target": d.target} for d in state.registry.run_datasets(run.id)]
    return {"id": run.id, "name": run.name, "status": run.status, "error": run.error,
            "seed": run.seed, "created_at": _iso(run.created_at),
            "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
            "datasets": datasets, "progress": run_progress(state.registry, run),
            "config": run.config, "process": _process_public(launcher.process(run.id))}


@router.post(
    "/runs", response_model=RunStarted, status_code=202,
    summary="Start a training run (checked first; trains in its own process)",
    description="Every option is checked before anything is written: the tables are read, "
    "targets, models and the metric resolved. Bad input is a 422 naming the problem. Then "
    "the run starts in a separate `fleetlearn train` process and this answers at once with "
    "its id; follow it with GET /v1/runs/{id}.",
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def start_run(state: StateDep, launcher: LauncherDep, _: Train,
                    body: RunCreate) -> dict[str, Any]:
    from fleetlearn.training import prepare

    config = await asyncio.to_thread(run_config_from, body, state.settings.data_path)
    prepared = await asyncio.to_thread(prepare, config)
    total = _count_units(prepared, config)
    warnings = [w for p in prepared for w in p.dataset.warnings] + [
        n for p in prepared for n in p.notes]
    child = await asyncio.to_thread(launcher.start, config, state)
    log.info("run %s started (pid %d, %d units)", child.run_id, child.proc.pid, total)
    return {"id": child.run_id, "status": "starting", "units_total": total,
            "warnings": warnings, "log": str(child.log)}


@router.get("/runs", response_model=RunsPublic, summary="Recent runs, newest first")
def list_runs(
    state: StateDep, launcher: LauncherDep, _: Read,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: Annotated[str | None, Query(
        pattern="^(starting|running|finished|failed|interrupted)$")] = None,
) -> dict[str, Any]:
    runs = state.registry.list_runs(limit=limit)
    known = {r.id for r in runs}
    rows: list[dict[str, Any]] = [
        {"id": rid, "name": None, "status": "starting", "created_at": None,
         "finished_at": None, "error": None, "datasets": []}
        for rid in launcher.starting() if rid not in known]
    for r in runs:
        rows.append({"id": r.id, "name": r.name, "status": r.status,
                     "created_at": _iso(r.created_at), "finished_at": _iso(r.finished_at),
                     "error": r.error,
                     "datasets": [d.name for d in state.registry.run_datasets(r.id)]})
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    rows = rows[:limit]
    return {"data": rows, "count": len(rows)}


@router.get("/runs/{run_id}", response_model=RunPublic,
            summary="A run: status, progress (units and trials done), failures",
            responses={404: {"model": ErrorBody}})
def get_run(state: StateDep, launcher: LauncherDep, _: Read, run_id: str) -> dict[str, Any]:
    return _run_public(state, launcher, run_id)


@router.get("/runs/{run_id}/leaderboard", response_model=LeaderboardPublic,
            summary="A run's leaderboard (partial while it runs)",
            responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
def run_leaderboard_route(
    state: StateDep, _: Read, run_id: str,
    metric: Annotated[str | None, Query(description="Rank by this metric instead of the "
                                        "run's primary one")] = None,
) -> dict[str, Any]:
    from fleetlearn.training import run_leaderboard

    run = state.registry.get_run(run_id)
    board = run_leaderboard(state.registry, run.id, metric=metric)
    # pandas writes NaN, NA and inf as null, and numpy scalars as plain numbers.
    rows = json.loads(board.to_json(orient="records")) if not board.empty else []
    return {"run_id": run.id, "status": run.status, "rows": rows}


@router.post("/runs/{run_id}/cancel", response_model=RunPublic,
             summary="Stop a run started through the API (marked interrupted, resumable)",
             description="Sends the training process Ctrl-C (it records what finished and "
             f"marks the run interrupted), and after {CANCEL_GRACE_S:g} s terminates its "
             "process group. Answers once it has stopped. Resume with `fleetlearn train "
             "--resume ID`.",
             responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}})
async def cancel_run(state: StateDep, launcher: LauncherDep, _: Train,
                     run_id: str) -> dict[str, Any]:
    try:
        run_id = (await asyncio.to_thread(state.registry.get_run, run_id)).id
    except NotFoundError:
        if launcher.process(run_id) is None:
            raise
    stopped = await asyncio.to_thread(launcher.cancel, run_id, state)
    if not stopped:
        current = await asyncio.to_thread(_run_public, state, launcher, run_id)
        if current["status"] == "running":
            raise HttpError(409, f"Run {run_id} is running, but not in a process this "
                           "machine's server started (it was started from a command line, "
                           "or on another machine): stop it there with Ctrl-C.", "Conflict")
        raise HttpError(409, f"Run {run_id} is {current['status']}: nothing to cancel.",
                       "Conflict")
    return await asyncio.to_thread(_run_public, state, launcher, run_id)


# ------------------------------------------------------------ comparison


def _frame_records(frame: Any) -> list[dict[str, Any]]:
    # pandas writes NaN, NA and inf as null, timestamps as ISO text.
    if frame is None or frame.empty:
        return []
    return json.loads(frame.to_json(orient="records", date_format="iso"))


@router.get("/runs/{run_id}/compare",
            summary="Which differences are real: per dataset each model against the best "
                    "(corrected resampled t-test, Holm), and across datasets average ranks, "
                    "Friedman and the Nemenyi critical difference",
            responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
def compare_route(
    state: StateDep, _: Read, run_id: str,
    metric: Annotated[str | None, Query(description="Compare on this metric instead of the "
                                        "run's primary one")] = None,
    alpha: Annotated[float, Query(gt=0, lt=1, description="Significance level")] = 0.05,
) -> dict[str, Any]:
    from fleetlearn.training._results import compare_run

    result = compare_run(state.registry, run_id, metric=metric, alpha=alpha)
    return {"run_id": result["run"].id, "alpha": alpha,
            "leaderboard": _frame_records(result["leaderboard"]),
            "across_datasets": {t: c.to_dict() for t, c in result["across"].items()},
            "notes": result["notes"]}


@router.get("/trends",
            summary="Scores over time: one model's versions, or every model of a dataset "
                    "(by name or fingerprint) across runs",
            responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
def trends_route(
    state: StateDep, _: Read,
    model: Annotated[str | None, Query(description="A model name: its versions")] = None,
    dataset: Annotated[str | None, Query(description="A dataset name or fingerprint: every "
                                         "model trained on it")] = None,
    metric: Annotated[str | None, Query(description="Test metric to follow; each "
                                        "version's primary metric by default")] = None,
) -> dict[str, Any]:
    from fleetlearn.evaluation import check_metric, score_trends
    from fleetlearn.registry import parse_model_ref

    if (model is None) == (dataset is None):
        raise HttpError(422, "Give exactly one of ?model=NAME or ?dataset=NAME.", "ConfigError")
    if model is not None:
        name, _v, _a = parse_model_ref(model)
        versions = state.registry.list_models(name=name)
        if not versions:
            state.registry.get_model_version(name)  # NotFoundError with a suggestion
    else:
        latest = state.registry.list_models(dataset=dataset)
        if not latest:
            raise HttpError(404, f"No model was trained on a dataset named '{dataset}' (name "
                           "or fingerprint); see GET /v1/models.", "NotFoundError")
        ids = {mv.dataset_id for mv in latest}
        versions = [v for mv in latest for v in state.registry.list_models(name=mv.name)
                    if v.dataset_id in ids]
    if metric is not None:
        task = (versions[0].input_schema or {}).get("task", "classification")
        check_metric(metric, task)
    points, summary = score_trends(versions, metric)
    return {"by": "model", "metric": metric, "points": _frame_records(points),
            "summary": _frame_records(summary)}
