"""Datasets: upload a table (role train), list the server's data folder (role read).

The streaming and the folder itself are in :mod:`fleetlearn.api._uploads`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from fleetlearn.api import _uploads
from fleetlearn.api.deps import ReadKey, StateDep, TrainKey
from fleetlearn.api.errors import ErrorBody, ORJSONResponse
from fleetlearn.api.schemas import DatasetPublic, DatasetsPublic
from fleetlearn.data import SUPPORTED_SUFFIXES

__all__ = ["router", "train_router"]

router = APIRouter(prefix="/v1", tags=["datasets"])
#: Uploads: API servers only, never Ray Serve replicas (a replica's disk is its own).
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
