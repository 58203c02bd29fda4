"""Models: list, versions, one version, aliases; and the server's own ``/v1/info``."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from fleetlearn.api.deps import AdminKey, ReadKey, StateDep
from fleetlearn.api.schemas import (
    AliasUpdate,
    ModelsPublic,
    ModelVersionPublic,
    ModelVersionsPublic,
)
from fleetlearn.errors import FleetlearnError
from fleetlearn.evaluation import greater_is_better
from fleetlearn.registry import ModelVersion, parse_model_ref

__all__ = ["router", "score_of", "version_public"]

router = APIRouter(prefix="/v1", tags=["models"])


def version_public(mv: ModelVersion) -> dict[str, Any]:
    """A version as the API shows it (:class:`ModelVersionPublic`)."""
    out = mv.to_dict()
    out["aliases"] = list(mv.aliases)
    return out


def score_of(mv: ModelVersion, metric: str | None = None) -> float | None:
    """A version's test score on ``metric`` (its primary one by default), if finite."""
    metric = metric or mv.metrics.get("primary_metric")
    value = (mv.metrics.get("test") or {}).get(metric) if metric else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


@router.get("/info", summary="Server version and configuration", operation_id="getInfo")
async def info(state: StateDep, _: ReadKey) -> dict[str, Any]:
    return state.describe()


@router.get("/models", response_model=ModelsPublic, summary="List models (latest versions)",
            operation_id="listModels")
def list_models(
    state: StateDep, _: ReadKey,
    dataset: Annotated[str | None, Query(description="Dataset name or fingerprint")] = None,
    task: Annotated[str | None, Query(pattern="^(classification|regression)$")] = None,
    alias: Annotated[str | None, Query(description="Only models with this alias; "
                                       "the aliased version is listed")] = None,
    has_alias: Annotated[bool, Query(description="Every version holding an alias (several "
                                     "per model when its aliases point at different "
                                     "versions), by name then version")] = False,
    metric: Annotated[str | None, Query(description="Only versions scored on this test "
                                        "metric, best first")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, description="Skip this many models first (paging: "
                                 "the next page is offset + limit)")] = 0,
) -> dict[str, Any]:
    best_high = True
    if metric is not None:
        try:
            best_high = greater_is_better(metric)
        except FleetlearnError:
            pass  # a metric fleetlearn does not know: higher is better, as for scores
    # Filters, order and page in SQL: a page costs the same with 10 or 100,000 versions.
    versions = state.registry.list_models(
        dataset=dataset, task=task, alias=alias, has_alias=has_alias, metric=metric,
        higher_is_better=best_high, limit=limit, offset=offset)
    datasets = {}
    rows = []
    for mv in versions:
        if mv.dataset_id is not None and mv.dataset_id not in datasets and mv.run_id:
            for d in state.registry.run_datasets(mv.run_id):
                datasets[d.id] = d
        ds = datasets.get(mv.dataset_id)
        rows.append({
            "name": mv.name, "version": mv.version, "aliases": list(mv.aliases),
            "task": ds.task if ds else mv.input_schema.get("task"),
            "dataset": ds.name if ds else None,
            "primary_metric": metric or mv.metrics.get("primary_metric"),
            "test_score": score_of(mv, metric), "created_at": mv.created_at.isoformat(),
        })
    return {"data": rows, "count": len(rows)}


@router.get("/models/{name}", response_model=ModelVersionsPublic,
            summary="Every version of a model, and its aliases", operation_id="getModel")
def model_versions(state: StateDep, _: ReadKey, name: str) -> dict[str, Any]:
    name, _v, _a = parse_model_ref(name)
    versions = state.registry.list_models(name=name)
    if not versions:
        state.registry.get_model_version(name)  # raises NotFoundError with a suggestion
    return {"name": name, "aliases": state.registry.aliases(name),
            "versions": [version_public(v) for v in versions]}


@router.get("/models/{name}/versions/{version}", response_model=ModelVersionPublic,
            summary="One version: metrics, parameters, lineage, input schema, digest",
            operation_id="getModelVersion")
def model_version(state: StateDep, _: ReadKey, name: str,
                  version: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    name, _v, _a = parse_model_ref(name)
    return version_public(state.registry.get_model_version(name, version=version))


@router.delete("/models/{name}/versions/{version}", status_code=204,
               summary="Delete a version, and the aliases pointing at it (admin)",
               description="Its artifact file goes too when no other version shares it. "
               "Servers stop serving it within seconds (the registry's version stamp).",
               operation_id="deleteModelVersion")
def delete_version(state: StateDep, _: AdminKey, name: str,
                   version: Annotated[int, Path(ge=1)]) -> Response:
    name, _v, _a = parse_model_ref(name)
    state.registry.delete_model_version(name, version)
    return Response(status_code=204)


@router.put("/models/{name}/aliases/{alias}", response_model=ModelVersionPublic,
            summary="Point an alias at a version (served within seconds, no restart)",
            operation_id="setAlias")
def set_alias(state: StateDep, _: AdminKey, name: str, alias: str,
              body: AliasUpdate) -> dict[str, Any]:
    state.registry.set_alias(name, alias, body.version)
    return version_public(state.registry.get_model_version(name, alias=alias))


@router.delete("/models/{name}/aliases/{alias}", status_code=204,
               summary="Remove an alias", operation_id="deleteAlias")
def delete_alias(state: StateDep, _: AdminKey, name: str, alias: str) -> Response:
    state.registry.delete_alias(name, alias)
    return Response(status_code=204)
