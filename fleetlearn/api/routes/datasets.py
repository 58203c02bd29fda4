"""Datasets: upload a table (role train), list the server's data folder (role read),
profile one (role read), write an example table into the folder (role train).

The streaming and the folder itself are in :mod:`fleetlearn.api._uploads`.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from fleetlearn.api import _uploads
from fleetlearn.api.deps import ReadKey, StateDep, TrainKey
from fleetlearn.api.errors import ErrorBody, HttpError, ORJSONResponse
from fleetlearn.api.schemas import (
    DatasetProfile,
    DatasetPublic,
    DatasetsPublic,
    ExamplesPublic,
)
from fleetlearn.data import (
    EXAMPLES,
    SUPPORTED_SUFFIXES,
    load_table,
    profile_frame,
    write_example,
)
from fleetlearn.errors import DataFileNotFoundError, did_you_mean

__all__ = ["router", "train_router"]

router = APIRouter(prefix="/v1", tags=["datasets"])
#: Uploads, profiles and examples: API servers only, never Ray Serve replicas (a
#: replica's disk is its own, and a profile reads a whole table).
train_router = APIRouter(prefix="/v1", tags=["datasets"])


@train_router.post(
    "/datasets", response_model=DatasetPublic, status_code=201,
    summary="Upload a dataset (CSV, TSV or Parquet) to train on",
    description="multipart/form-data with a `file` part and an optional `name` field "
    "(`curl -F file=@iris.csv`). The server chooses the stored name (answered as `name`, "
    "to use in `POST /v1/runs`) from the `name` field or the file's name, reduced to "
    "letters, digits, `_` and `-`, with the suffix the content calls for; the client's "
    "file name is kept as `label` only. The content is sniffed (Parquet or delimited text; "
    "archives, documents, images, JSON, HTML and binary data are refused) and read with "
    "the training reader before it is kept; an unreadable or empty file is refused and not "
    "kept. The same content under the same name again answers 200 with the stored copy; "
    "other content under a taken name is stored as `<name>-<first 8 hex of its "
    "sha256>`, or a 409 when the `name` field asked for that exact name. Stored files are "
    "never replaced, so a run's data stays as it was trained.",
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"},
            "name": {"type": "string", "maxLength": 1024,
                     "description": "Name to keep it under (the file's name by default), "
                     "made safe by the server; a missing suffix is taken from the file."}}}}}}},
    operation_id="uploadDataset",
    responses={200: {"model": DatasetPublic, "description": "Already stored (same content)."},
               409: {"model": ErrorBody, "description": "The name asked for is taken by other "
                     "content."},
               413: {"model": ErrorBody, "description": "Over upload_max_mb."},
               415: {"model": ErrorBody, "description": "Not multipart/form-data."}},
)
async def upload_dataset(request: Request, state: StateDep, _: TrainKey) -> Any:
    data = state.settings.data_path
    await asyncio.to_thread(_uploads.meta_dir(data).mkdir, parents=True, exist_ok=True)
    try:
        sink = await _uploads.receive(request, _uploads.meta_dir(data),
                                      state.settings.upload_max_mb)
    except ClientDisconnect:
        return Response(status_code=400)
    assert sink.filename is not None
    wanted, exact = sink.filename, False
    if "name" in sink.fields:
        asked = _uploads.label_of(sink.fields["name"].decode("utf-8", "replace"))
        if asked:
            if Path(asked).suffix.lower() not in SUPPORTED_SUFFIXES:
                asked += Path(sink.filename).suffix
            wanted, exact = asked, True
    record, created = await asyncio.to_thread(_uploads.store, sink, data, wanted, exact=exact)
    return ORJSONResponse(record, status_code=201 if created else 200)


@router.get("/datasets", response_model=DatasetsPublic,
            summary="The tables in the server's data folder (uploads and files put there)",
            operation_id="listDatasets")
def list_datasets(state: StateDep, _: ReadKey) -> dict[str, Any]:
    rows = _uploads.list_entries(state.settings.data_path)
    return {"data": rows, "count": len(rows)}


def _profile(data: Path, name: str, target: str | None) -> dict[str, Any]:
    try:
        path = _uploads.resolve_dataset(name, data)
    except DataFileNotFoundError as exc:
        raise HttpError(404, str(exc), "NotFound") from None
    return profile_frame(load_table(path), target, name=path.name)


@train_router.get(
    "/datasets/{name}/profile", response_model=DatasetProfile, operation_id="profileDataset",
    summary="What training would make of a table: each column's kind, the target's task",
    description="Reads the table with the training reader and infers as a run would: "
    "each column's kind (numeric, categorical, boolean, datetime, or why it is left out: "
    "text, id-like, constant, ...), its missing cells and frequent values. With "
    "`?target=COL`, that column's detected task and its classes (or value summary). An "
    "unknown table is a 404, an unknown target a 422 naming the columns.",
    responses={404: {"model": ErrorBody, "description": "No such table in the data folder."}})
async def profile_dataset(state: StateDep, _: ReadKey, name: str, target: Annotated[
        str | None, Query(max_length=1000, description="The column to predict.")] = None
                          ) -> Any:
    return await asyncio.to_thread(_profile, state.settings.data_path, name, target or None)


@train_router.get("/datasets/examples", response_model=ExamplesPublic,
                  operation_id="listExamples",
                  summary="Example tables the server can write into its data folder")
def list_examples(state: StateDep, _: ReadKey) -> dict[str, Any]:
    data = state.settings.data_path
    rows = [{"name": name, "target": target, "description": text,
             "stored": (data / name).exists()} for name, (target, text) in EXAMPLES.items()]
    return {"data": rows, "count": len(rows)}


def _store_example(data: Path, name: str) -> tuple[dict[str, Any], bool]:
    _uploads.meta_dir(data).mkdir(parents=True, exist_ok=True)
    staging = _uploads.meta_dir(data) / f".example-{uuid.uuid4().hex}"
    try:
        return _uploads.store_file(write_example(name, staging), data, name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@train_router.post(
    "/datasets/examples/{name}", response_model=DatasetPublic, status_code=201,
    operation_id="addExample",
    summary="Write an example table (iris, wine, ...) into the data folder, to train on",
    description="The table is kept as an upload would be. Asking again answers 200 with "
    "the stored copy (the content is always the same); a different table kept under the "
    "same name is a 409.",
    responses={200: {"model": DatasetPublic, "description": "Already stored."},
               404: {"model": ErrorBody, "description": "No such example."},
               409: {"model": ErrorBody, "description": "The name holds another table."}})
async def add_example(state: StateDep, _: TrainKey, name: str) -> Any:
    if name not in EXAMPLES:
        raise HttpError(404, f"No example table '{name}'.{did_you_mean(name, EXAMPLES)} "
                        f"The examples are: {', '.join(EXAMPLES)} (GET /v1/datasets/examples).",
                        "NotFound")
    record, created = await asyncio.to_thread(_store_example, state.settings.data_path, name)
    return ORJSONResponse(record, status_code=201 if created else 200)
