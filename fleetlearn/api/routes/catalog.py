"""The model catalog: every model a run can name, its parameters and the default sets.

``GET /v1/catalog`` (role read). The answer is built once per server process: it imports
every estimator (seconds), and the catalog only changes with fleetlearn itself.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from fleetlearn.api.deps import ReadKey
from fleetlearn.api.schemas import CatalogPublic
from fleetlearn.catalog import catalog_models

__all__ = ["catalog_answer", "router"]

router = APIRouter(prefix="/v1", tags=["catalog"])


@functools.cache
def catalog_answer(task: str | None = None) -> dict[str, Any]:
    """:func:`fleetlearn.catalog.catalog_models`, kept for the life of the process."""
    if task is not None:
        whole = catalog_answer()
        return {"models": [m for m in whole["models"] if task in m["tasks"]],
                "defaults": {task: whole["defaults"][task]}}
    return catalog_models()


@router.get("/catalog", response_model=CatalogPublic, operation_id="getCatalog",
            summary="The catalog's models, their parameters (type, default, range or "
            "choices) and the default set of each task")
async def get_catalog(_: ReadKey, task: Annotated[
        str | None, Query(pattern="^(classification|regression)$",
                          description="Only this task's models.")] = None) -> Any:
    return await run_in_threadpool(catalog_answer, task)
