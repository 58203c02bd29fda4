"""The FastAPI app: health, models, predictions, statistics, metrics, keys.

Routes are thin: they parse, check the caller's role, and hand over to the model cache,
the predictor and the registry. Every error a caller can cause is a 4xx with a JSON
body ``{"detail": ..., "error": ...}``; bad prediction input lists every problem.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleetlearn import __version__
from fleetlearn.errors import (
    ArtifactIntegrityError,
    ClusterError,
    FleetlearnError,
    NotFoundError,
    RegistryError,
)
from fleetlearn.monitoring._metrics import CONTENT_TYPE
from fleetlearn.monitoring._stats import series, summarize
from fleetlearn.registry import ApiKey, ModelVersion, parse_model_ref
from fleetlearn.security import role_allows
from fleetlearn.serving._inputs import InputError, InputProblem, parse_rows
from fleetlearn.serving._schemas import (
    PREDICT_REQUEST_SCHEMA,
    AliasUpdate,
    ErrorBody,
    InputErrorBody,
    KeyCreate,
    KeyCreated,
    KeyPublic,
    ModelsPublic,
    ModelVersionPublic,
    ModelVersionsPublic,
    PredictionPublic,
)
from fleetlearn.serving._settings import ServeSettings
from fleetlearn.serving._state import ServingState

__all__ = ["create_app", "ORJSONResponse"]

log = logging.getLogger("fleetlearn.serving")


class ORJSONResponse(JSONResponse):
    """JSON via orjson: several times faster than the standard library for big bodies."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _error(status: int, detail: str, error: str, headers: dict[str, str] | None = None,
           **extra: Any) -> ORJSONResponse:
    return ORJSONResponse({"detail": detail, "error": error, **extra}, status_code=status,
                          headers=headers)


class HttpError(Exception):
    """An HTTP error raised from a dependency or route (status, message, kind)."""

    def __init__(self, status: int, detail: str, error: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.error, self.headers = status, detail, error, headers


def _status_of(exc: FleetlearnError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ArtifactIntegrityError):
        return 500
    if isinstance(exc, RegistryError | ClusterError):
        return 503
    return 422


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or unknown API key."},
    403: {"model": ErrorBody, "description": "The key's role does not allow this."},
}


# --------------------------------------------------------------------- auth


def require(role: str) -> Callable[[Request], Awaitable[ApiKey | None]]:
    """A dependency that lets through callers whose key has at least ``role``."""

    async def check(request: Request) -> ApiKey | None:
        state: ServingState = request.app.state.serving
        if not state.auth_required:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise HttpError(401, "An API key is required: send 'Authorization: Bearer <key>' "
                           "(create one with 'fleetlearn keys create --role "
                           f"{role}').", "Unauthorized", {"WWW-Authenticate": "Bearer"})
        key = state.authenticate(secret.strip())
        if key is None:
            raise HttpError(401, "Unknown or revoked API key: check the key, or ask an admin "
                           "for a new one ('fleetlearn keys list').", "Unauthorized",
                           {"WWW-Authenticate": "Bearer"})
        if not role_allows(key.role, role):
            raise HttpError(403, f"Key '{key.name}' has role '{key.role}'; this needs "
                           f"'{role}' or higher.", "Forbidden")
        request.scope.setdefault("state", {})["key"] = key.name
        return key

    return check


Read = Annotated[ApiKey | None, Depends(require("read"))]
Predict = Annotated[ApiKey | None, Depends(require("predict"))]
Admin = Annotated[ApiKey | None, Depends(require("admin"))]


def _state(request: Request) -> ServingState:
    return request.app.state.serving


StateDep = Annotated[ServingState, Depends(_state)]


# ----------------------------------------------------------------- metrics


class _Instrument:
    """ASGI middleware: in-flight gauge, request counter and latency by route and model."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = scope["app"].state.serving.metrics
        status = [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        start = time.perf_counter()
        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            state = scope.get("state") or {}
            model, version = state.get("model", ""), str(state.get("version", ""))
            metrics.requests.labels(route, scope["method"], str(status[0]), model,
                                    version).inc()
            metrics.latency.labels(route, model, version).observe(time.perf_counter() - start)


# ----------------------------------------------------------------- helpers


def _version_public(mv: ModelVersion) -> dict[str, Any]:
    out = mv.to_dict()
    out["aliases"] = list(mv.aliases)
    return out


def _test_score(mv: ModelVersion, metric: str | None = None) -> float | None:
    metric = metric or mv.metrics.get("primary_metric")
    value = (mv.metrics.get("test") or {}).get(metric) if metric else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _split_ref(raw: str, version: int | None) -> tuple[str, int | None, str | None]:
    name, ref_version, alias = parse_model_ref(raw)
    if version is not None and (ref_version is not None or alias is not None):
        raise HttpError(422, f"Give the version either in the path ('{raw}') or as "
                       f"?version={version}, not both.", "ConfigError")
    return name, version if version is not None else ref_version, alias


# ------------------------------------------------------------------- routes

health = APIRouter(tags=["health"])


@health.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


_BACKGROUND: set[Any] = set()  # strong references: the loop keeps only weak ones


def _background_done(task: Any) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("preloading failed: %s", task.exception())


@health.get("/readyz", summary="The registry answers and preloaded models are in memory",
            responses={503: {"model": ErrorBody}})
async def readyz(state: StateDep) -> Any:
    import asyncio

    try:
        stamp = await asyncio.to_thread(state.registry.version_stamp)
    except FleetlearnError as exc:
        return _error(503, f"Registry not reachable: {exc}", "RegistryError")
    missing = []
    for ref in state.settings.preload:
        name, version, alias = parse_model_ref(ref)
        try:
            mv = state.cache.resolve(name, version, alias)
        except FleetlearnError as exc:
            return _error(503, f"Preloaded model {ref}: {exc}", type(exc).__name__)
        if state.cache.peek(mv) is None:
            missing.append(ref)
            # Load it now (once, however many probes ask): a not-ready replica gets no
            # traffic, so after an alias moves nothing else would ever load the target.
            task = asyncio.ensure_future(state.cache.get(mv))
            _BACKGROUND.add(task)
            task.add_done_callback(_background_done)
    if missing:
        return _error(503, f"Not loaded yet: {', '.join(missing)}.", "NotReady")
    return {"status": "ready", "registry_stamp": stamp, "models_loaded": len(state.cache)}


models = APIRouter(prefix="/v1", tags=["models"], responses=ERROR_RESPONSES)


@models.get("/info", summary="Server version and configuration")
async def info(state: StateDep, _: Read) -> dict[str, Any]:
    return state.describe()


@models.get("/models", response_model=ModelsPublic, summary="List models (latest versions)")
def list_models(
    state: StateDep, _: Read,
    dataset: Annotated[str | None, Query(description="Dataset name or fingerprint")] = None,
    task: Annotated[str | None, Query(pattern="^(classification|regression)$")] = None,
    alias: Annotated[str | None, Query(description="Only models with this alias; "
                                       "the aliased version is listed")] = None,
    metric: Annotated[str | None, Query(description="Only versions scored on this test "
                                        "metric, best first")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    from fleetlearn.evaluation import greater_is_better

    versions = state.registry.list_models(dataset=dataset, task=task)
    if alias is not None:
        picked = []
        for mv in versions:
            target = state.registry.aliases(mv.name).get(alias)
            if target is not None:
                picked.append(state.registry.get_model_version(mv.name, version=target))
        versions = picked
    if metric is not None:
        versions = [mv for mv in versions if _test_score(mv, metric) is not None]
        try:
            best_high = greater_is_better(metric)
        except FleetlearnError:
            best_high = True
        versions.sort(key=lambda mv: _test_score(mv, metric) or 0.0, reverse=best_high)
    datasets = {}
    rows = []
    for mv in versions[:limit]:
        if mv.dataset_id is not None and mv.dataset_id not in datasets and mv.run_id:
            for d in state.registry.run_datasets(mv.run_id):
                datasets[d.id] = d
        ds = datasets.get(mv.dataset_id)
        rows.append({
            "name": mv.name, "version": mv.version, "aliases": list(mv.aliases),
            "task": ds.task if ds else mv.input_schema.get("task"),
            "dataset": ds.name if ds else None,
            "primary_metric": metric or mv.metrics.get("primary_metric"),
            "test_score": _test_score(mv, metric), "created_at": mv.created_at.isoformat(),
        })
    return {"data": rows, "count": len(rows)}


@models.get("/models/{name}", response_model=ModelVersionsPublic,
            summary="Every version of a model, and its aliases",
            responses={404: {"model": ErrorBody}})
def model_versions(state: StateDep, _: Read, name: str) -> dict[str, Any]:
    name, _v, _a = parse_model_ref(name)
    versions = state.registry.list_models(name=name)
    if not versions:
        state.registry.get_model_version(name)  # raises NotFoundError with a suggestion
    return {"name": name, "aliases": state.registry.aliases(name),
            "versions": [_version_public(v) for v in versions]}


@models.get("/models/{name}/versions/{version}", response_model=ModelVersionPublic,
            summary="One version: metrics, parameters, lineage, input schema, digest",
            responses={404: {"model": ErrorBody}})
def model_version(state: StateDep, _: Read, name: str,
                  version: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    name, _v, _a = parse_model_ref(name)
    return _version_public(state.registry.get_model_version(name, version=version))


@models.put("/models/{name}/aliases/{alias}", response_model=ModelVersionPublic,
            summary="Point an alias at a version (served within seconds, no restart)",
            responses={404: {"model": ErrorBody}})
def set_alias(state: StateDep, _: Admin, name: str, alias: str,
              body: AliasUpdate) -> dict[str, Any]:
    state.registry.set_alias(name, alias, body.version)
    return _version_public(state.registry.get_model_version(name, alias=alias))


@models.delete("/models/{name}/aliases/{alias}", status_code=204,
               summary="Remove an alias", responses={404: {"model": ErrorBody}})
def delete_alias(state: StateDep, _: Admin, name: str, alias: str) -> Response:
    state.registry.delete_alias(name, alias)
    return Response(status_code=204)


predict = APIRouter(prefix="/v1", tags=["predict"], responses=ERROR_RESPONSES)


@predict.post(
    "/models/{name}/predict",
    response_model=PredictionPublic,
    summary="Predict with a model: latest version, name@alias, or ?version=N",
    openapi_extra={"requestBody": PREDICT_REQUEST_SCHEMA},
    responses={404: {"model": ErrorBody}, 413: {"model": InputErrorBody},
               422: {"model": InputErrorBody}},
)
async def predict_route(
    request: Request, _: Predict,
    name: Annotated[str, Path(description="'name', 'name@alias' or 'name:version'")],
    version: Annotated[int | None, Query(ge=1)] = None,
) -> Any:
    state: ServingState = request.app.state.serving
    start = time.perf_counter()
    model, ver, alias = _split_ref(name, version)
    mv = state.cache.resolve(model, ver, alias)
    scope_state = request.scope.setdefault("state", {})
    scope_state["model"], scope_state["version"] = mv.name, mv.version
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
        return _error(exc.status, detail, "InputError",
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


monitoring = APIRouter(tags=["monitoring"], responses=ERROR_RESPONSES)


@monitoring.get("/metrics", summary="Prometheus metrics", response_class=Response,
                responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics_route(state: StateDep, _: Read) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


@monitoring.get("/v1/stats", summary="Inference statistics per model version")
def stats_route(
    state: StateDep, _: Read,
    scope: Annotated[str, Query(pattern="^(replica|registry)$", description=(
        "'replica': this process, live. 'registry': every replica and earlier runs, "
        "as flushed to the registry (every stats_flush_s seconds)."))] = "replica",
    window: Annotated[float, Query(gt=0, le=86400 * 30, description="Seconds of recent "
                                   "traffic for rates and recent percentiles")] = 60.0,
    model: str | None = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    since: Annotated[float | None, Query(ge=0, le=86400 * 365, description="Only windows of "
                                         "the last N seconds (registry scope)")] = None,
) -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    if scope == "registry":
        state.flush()
        start = datetime.now(UTC) - timedelta(seconds=since) if since else None
        rows = state.registry.inference_stats(since=start, model=model, version=version)
        started = None
    else:
        state.stats.sample_process()
        rows = [w for w in state.stats.windows()
                if (model is None or w["model"] == model)
                and (version is None or w["version"] == version)]
        started = state.stats.started
    return {"scope": scope, "replica": state.stats.replica,
            "window_s": state.settings.stats_window_s,
            "models": summarize(rows, last_s=window, started=started),
            "series": series(rows)}


keys = APIRouter(prefix="/v1/keys", tags=["keys"], responses=ERROR_RESPONSES)


def _key_public(key: ApiKey) -> dict[str, Any]:
    return key.to_dict()


@keys.get("", response_model=list[KeyPublic], summary="List API keys (never the secrets)")
def list_keys(state: StateDep, _: Admin, include_revoked: bool = False) -> list[dict[str, Any]]:
    return [_key_public(k) for k in state.registry.list_api_keys(include_revoked)]


@keys.post("", response_model=KeyCreated, status_code=201,
           summary="Create an API key (the secret is in this answer only)")
def create_key(state: StateDep, _: Admin, body: KeyCreate) -> dict[str, Any]:
    key, secret = state.registry.create_api_key(body.name, body.role)
    return {**_key_public(key), "key": secret}


@keys.delete("/{key}", response_model=KeyPublic, summary="Revoke a key by id, name or prefix",
             responses={404: {"model": ErrorBody}})
def revoke_key(state: StateDep, _: Admin, key: str) -> dict[str, Any]:
    return _key_public(state.registry.revoke_api_key(key))


# --------------------------------------------------------------------- app


def _offline_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI 5, OpenAPI 3.1) from files shipped in a wheel."""
    from importlib.resources import files

    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    static = files("swagger_ui") / "static"
    app.mount("/docs-static", StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon-32x32.png")


def create_app(settings: ServeSettings | None = None, state: ServingState | None = None,
               extra_routers: list[APIRouter] | None = None) -> FastAPI:
    """Build the fleetlearn REST API.

    Parameters
    ----------
    settings : ServeSettings, optional
        Defaults, or ``FLEETLEARN_SERVE_*`` environment variables.
    state : ServingState, optional
        A prepared state (tests, Ray Serve replicas); built from ``settings`` otherwise.

    Examples
    --------
    >>> from fastapi.testclient import TestClient                   # doctest: +SKIP
    >>> with TestClient(create_app()) as client:                    # doctest: +SKIP
    ...     client.get("/healthz").json()
    {'status': 'ok'}
    """
    settings = settings or (state.settings if state else ServeSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "serving", None) is None:
            app.state.serving = ServingState(settings)
        await app.state.serving.start()
        try:
            yield
        finally:
            await app.state.serving.stop()

    app = FastAPI(
        title="fleetlearn",
        version=__version__,
        summary="Predict with, inspect and monitor the models fleetlearn trained.",
        description=(
            "Authentication: `Authorization: Bearer <key>` (keys from `fleetlearn keys "
            "create`). Roles, each including the ones before: read, predict, train, admin. "
            "A server on 127.0.0.1 with no keys in its registry runs without authentication."
        ),
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        # FastAPI's pages load Swagger UI from a CDN: blank on machines without internet.
        docs_url=None,
        redoc_url=None,
    )
    app.state.serving = state
    _offline_docs(app)
    from fleetlearn.serving._training import router as training  # imports this module

    for router in (health, models, predict, monitoring, keys, training,
                   *(extra_routers or [])):
        app.include_router(router)
    app.add_middleware(_Instrument)

    @app.exception_handler(HttpError)
    async def _api_error(request: Request, exc: HttpError) -> ORJSONResponse:
        return _error(exc.status, exc.detail, exc.error, exc.headers)

    # FastAPI's own 422 (query, path, JSON body) and Starlette's 404/405 answer
    # {"detail": ...} only: give them the same {"detail", "error"} shape as the rest.
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> ORJSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return _error(422, f"Invalid request: {where}: {first['msg']}." if where else
                      f"Invalid request: {first['msg']}.", "ValidationError", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code < 400 or exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        error = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            detail = f"No route {request.method} {request.url.path}: see /docs for the API."
        return _error(exc.status_code, detail, error, exc.headers)

    @app.exception_handler(FleetlearnError)
    async def _fleetlearn_error(request: Request, exc: FleetlearnError) -> ORJSONResponse:
        status = _status_of(exc)
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, exc)
        return _error(status, " ".join(str(exc).split()), type(exc).__name__)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> ORJSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"Internal error ({type(exc).__name__}); the server log has the "
                      "details.", "InternalError")

    return app
