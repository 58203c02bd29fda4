"""Predictions: ``POST /v1/models/{name}/predict`` (role predict).

The body is parsed with orjson and checked against the version's own input schema
(:func:`fleetlearn.serving.parse_rows`), not by Pydantic: it is the hot path, and the
columns differ per model. Its schema in the spec is written by hand
(:data:`~fleetlearn.api.schemas.PREDICT_REQUEST_SCHEMA`).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request

from fleetlearn.api.deps import PredictKey
from fleetlearn.api.errors import ErrorBody, HttpError, ORJSONResponse, error_response
from fleetlearn.api.schemas import PREDICT_REQUEST_SCHEMA, PredictionPublic
from fleetlearn.logs import bind_log_context
from fleetlearn.registry import parse_model_ref
from fleetlearn.serving import InputError, InputProblem, ServingState, parse_rows

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["predict"])


def _split_ref(raw: str, version: int | None) -> tuple[str, int | None, str | None]:
    name, ref_version, alias = parse_model_ref(raw)
    if version is not None and (ref_version is not None or alias is not None):
        raise HttpError(422, f"Give the version either in the path ('{raw}') or as "
                        f"?version={version}, not both.", "ConfigError")
    return name, version if version is not None else ref_version, alias


@router.post(
    "/models/{name}/predict",
    response_model=PredictionPublic,
    summary="Predict with a model: latest version, name@alias, or ?version=N",
    openapi_extra={"requestBody": PREDICT_REQUEST_SCHEMA},
    operation_id="predict",
    responses={
        413: {"model": ErrorBody, "description": "The body is over the server's "
              "limit (max_body_mb)."},
        # 500, not 503: the fault is this one model's stored artifact (tampered, missing,
        # or holding an untrusted type), which a retry would hit again; every other
        # model keeps answering. The body names it (error ArtifactIntegrityError).
        500: {"model": ErrorBody, "description": "Internal error; or this model's stored "
              "artifact failed its integrity or trust check (error "
              "'ArtifactIntegrityError', the message names the model and the failure): "
              "do not retry, another model or version still answers."},
    },
)
async def predict_route(
    request: Request, _: PredictKey,
    name: Annotated[str, Path(description="'name', 'name@alias' or 'name:version'")],
    version: Annotated[int | None, Query(ge=1)] = None,
) -> Any:
    state: ServingState = request.app.state.serving
    start = time.perf_counter()
    model, ver, alias = _split_ref(name, version)
    mv = state.cache.resolve(model, ver, alias)
    scope_state = request.scope.setdefault("state", {})
    scope_state["model"], scope_state["version"] = mv.name, mv.version
    bind_log_context(model=mv.name, version=mv.version)  # the request's log lines, access too
    try:
        raw = await request.body()
        if len(raw) > state.settings.max_body_mb * 2**20:
            raise InputError([InputProblem(("body",), f"The body is {len(raw) / 2**20:.1f} MiB; "
                              f"this server accepts {state.settings.max_body_mb:g} MiB per "
                              "request. Split it.", "too_large")], status=413)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InputError([InputProblem(("body",), f"The body is not valid JSON: {exc}. "
                                           "NaN and Infinity are not JSON; send null for a "
                                           "missing value.", "json_invalid")]) from exc
        loaded = state.cache.peek(mv)
        if loaded is None:
            state.metrics.cache_misses.inc()
            loaded = await state.cache.get(mv)
        else:
            state.metrics.cache_hits.inc()
        predictor = loaded.predictor
        rows = parse_rows(body, predictor.schema, max_rows=state.settings.max_rows,
                          known_extra=predictor.known_extra)
        proba = body.get("return_proba", False)
        if not isinstance(proba, bool):
            raise InputError([InputProblem(("body", "return_proba"), "'return_proba' must be "
                                           "true or false.", "bool_type")])
        if proba and not predictor.has_proba:
            raise InputError([InputProblem(("body", "return_proba"), f"Model {mv.ref} gives no "
                                           "probabilities (it is a regressor or its estimator "
                                           "has no predict_proba); drop return_proba.",
                                           "unsupported")])
        result = await loaded.batcher.predict(rows, proba=proba)
    except InputError as exc:
        state.stats.record(mv.name, mv.version, (time.perf_counter() - start) * 1e3, 0,
                           error=True)
        count = len(exc.problems) + exc.extra
        first = exc.problems[0].msg if exc.problems else ""
        detail = (f"The request does not fit model {mv.ref}: {first}" if count == 1 else
                  f"The request does not fit model {mv.ref}: {count} problems, the first: "
                  f"{first} See 'errors' for all of them.")
        return error_response(exc.status, detail, "InputError",
                      errors=[p.to_dict() for p in exc.problems], more=exc.extra)
    except Exception:
        # A failure of the server or the model still counts in /v1/stats' error rate.
        state.stats.record(mv.name, mv.version, (time.perf_counter() - start) * 1e3, 0,
                           error=True)
        raise
    labels = (mv.name, str(mv.version))
    state.metrics.rows.labels(*labels).inc(rows.n)
    for column, count in rows.unseen.items():
        state.metrics.unseen.labels(*labels, column).inc(count)
    out: dict[str, Any] = {"model": mv.name, "version": mv.version,
                           "predictions": result.labels, "unseen_categories": rows.unseen}
    if result.proba is not None:
        out["probabilities"] = result.proba
        out["classes"] = predictor.classes
    state.stats.record(mv.name, mv.version, (time.perf_counter() - start) * 1e3, rows.n)
    return ORJSONResponse(out)
