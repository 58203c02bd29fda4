"""The app factory: routers, the metrics middleware, error handlers, offline ``/docs``.

Routes are thin: they parse, check the caller's role (:mod:`fleetlearn.api.deps`), and
hand over to the model cache, the predictor, the registry and the run launcher. Every
error answers fleetlearn's one body (:class:`~fleetlearn.api.errors.ErrorBody`).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from fleetlearn import __version__
from fleetlearn.api.deps import require
from fleetlearn.api.errors import (
    ErrorBody,
    HttpError,
    ORJSONResponse,
    error_response,
    retry_after_of,
    status_of,
    validation_error,
)
from fleetlearn.api.routes import (
    catalog,
    cluster,
    datasets,
    health,
    insights,
    keys,
    models,
    predict,
    reports,
    runs,
    stats,
)
from fleetlearn.errors import FleetlearnError, RegistryUnavailableError
from fleetlearn.logs import log_context
from fleetlearn.serving import ServeSettings, ServingState

__all__ = ["api_routes", "create_app", "role_of"]

log = logging.getLogger("fleetlearn.serving")


#: An ``X-Request-ID`` a client sends is kept when it looks like an id (a proxy's, a
#: trace's); anything else is replaced, so a log line never carries a client's text.
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class _RequestId:
    """ASGI middleware, outermost: every request gets an id, in the log context (every
    log line made while it is served carries ``request_id``, the access line too) and
    in the ``X-Request-ID`` response header.

    Outermost, around Starlette's ServerErrorMiddleware (see :func:`create_app`): an
    unexpected error's 500 still carries the id, and its log line too.
    """

    def __init__(self, app: Any, header: bool = True) -> None:
        self.app = app
        self.header = header

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start" and self.header:
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers.append("X-Request-ID", request_id)
            await send(message)

        scope.setdefault("state", {})["request_id"] = request_id
        with log_context(request_id=request_id, started=started):
            await self.app(scope, receive, send_with_id)


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


def _offline_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI 5, OpenAPI 3.1) from files shipped in a wheel."""
    static = files("swagger_ui") / "static"
    app.mount("/docs-static", StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon-32x32.png")


def _allowed_methods(app: FastAPI, path: str) -> str:
    """The ``Allow`` header of ``path``: the methods of every route it matches.

    Starlette's 405 names only the methods of the first route that matched the path;
    ``/v1/keys`` has GET and POST in two routes.
    """
    methods: set[str] = set()
    for route in api_routes(app):
        regex, _, _ = compile_path(route.path_format)
        if regex.match(path):
            methods |= set(route.methods)
    return ", ".join(sorted(methods))


def _without_locations(message: str, request: Request) -> str:
    """``message`` without where the server keeps things: the registry's URL (even
    masked it names the database host or the SQLite file's path), the artifact and data
    folders. A client learns what it did wrong; the server log keeps the whole message
    under the request's id, which the answer carries (X-Request-ID)."""
    state = getattr(request.app.state, "serving", None)
    if state is None:
        return message
    registry = state.registry
    places = [(str(registry.url), "the server's registry"),
              (str(registry.artifacts.root), "the server's artifact store")]
    places.append((str(state.settings.data_path), "the server's data folder"))
    for place, name in sorted(places, key=lambda p: -len(p[0])):
        if place and place in message:
            message = message.replace(f"registry {place}", name).replace(place, name)
    return message


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(HttpError)
    async def _api_error(request: Request, exc: HttpError) -> ORJSONResponse:
        return error_response(exc.status, exc.detail, exc.error, exc.headers)

    async def _refused(request: Request) -> ORJSONResponse | None:
        """The 401/403/429 a caller without the route's role gets before any word on its
        request: FastAPI reads and validates the body before the key's dependency runs."""
        route = request.scope.get("route")
        role = role_of(route) if isinstance(route, APIRoute) else None
        if role is None:
            return None
        try:
            await require(role)(request)
        except HttpError as exc:
            return error_response(exc.status, exc.detail, exc.error, exc.headers)
        return None

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> ORJSONResponse:
        refused = await _refused(request)
        if refused is not None:
            return refused
        # The run body's errors read like the run options' everywhere else.
        run_body = request.method == "POST" and request.url.path == "/v1/runs"
        return validation_error(exc, run_body=run_body)

    # Starlette's own 404 (no route) and 405 (wrong method, with its Allow header).
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code < 400 or exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        error = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot decode (not UTF-8, not JSON): the same
            # 422 as any other invalid body, as the spec declares (after the key's check).
            refused = await _refused(request)
            if refused is not None:
                return refused
            msg = f"{detail}: send a JSON body (UTF-8)."
            return error_response(422, f"The request body is not valid: {msg}",
                                  "ValidationError",
                                  errors=[{"loc": ["body"], "msg": msg, "type": "json_invalid"}])
        if exc.status_code == 404:
            detail = f"No route {request.method} {request.url.path}: see /docs for the API."
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(app, request.url.path) or headers.get(
                "Allow", "")
            detail = (f"{request.method} is not allowed on {request.url.path}; it answers "
                      f"{headers['Allow']}.")
        return error_response(exc.status_code, detail, error, headers or None)

    @app.exception_handler(FleetlearnError)
    async def _fleetlearn_error(request: Request, exc: FleetlearnError) -> ORJSONResponse:
        status = status_of(exc)
        message = " ".join(str(exc).split())
        if isinstance(exc, RegistryUnavailableError):
            # The driver's own words name the database's host and port: kept for the log.
            detail = ("The server's registry is unavailable for now: retry in a few seconds "
                      "(writes are not applied until it is back).")
        else:
            detail = _without_locations(message, request)
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, message)
        elif detail != message:  # the operator still reads where (the line has the id)
            log.info("%s answered %d: %s", type(exc).__name__, status, message)
        return error_response(status, detail, type(exc).__name__, retry_after_of(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> ORJSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"Internal error ({type(exc).__name__}); the server log "
                              "has the details.", "InternalError")


#: What each error status means, as the spec says it (every one answers ErrorBody).
_STATUS_TEXT = {
    401: "Missing or unknown API key.",
    403: "The key's role does not allow this.",
    404: "No such model, version, alias, run or key (the message suggests the closest).",
    409: "The request clashes with the current state.",
    429: "Too many failed authentications from this address: wait Retry-After seconds.",
    413: "The body is over this server's limit.",
    415: "Unsupported media type.",
    422: "The request is not valid: 'errors' lists every problem.",
    500: "Internal error, or a stored artifact that failed its integrity check.",
    503: "The registry (or the cluster) is not reachable, or the server is not ready.",
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_REQUEST_ID_REF = {"$ref": "#/components/headers/RequestId"}


def api_routes(app: FastAPI) -> list[Any]:
    """Every API route of the app with its full path (``path_format``, ``methods``,
    ``dependant``), through included routers (FastAPI keeps those nested)."""
    return [ctx for ctx in iter_route_contexts(app.routes)
            if isinstance(ctx.original_route, APIRoute)]


def role_of(route: Any) -> str | None:
    """The role a route's dependencies require (see :func:`fleetlearn.api.deps.require`)."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        role = getattr(dep.call, "fleetlearn_role", None)
        if role is not None:
            return role
        stack.extend(dep.dependencies)
    return None


def _error_statuses(route: Any, method: str) -> set[int]:
    """Every error status an operation can answer (beyond those it declares itself)."""
    statuses = {500}
    if route.path_format != "/healthz":
        statuses.add(503)  # the registry is behind every other route
    if role_of(route) is not None:
        statuses |= {401, 403, 429}
    dependant = route.dependant
    if dependant.path_params or route.path_format == "/v1/trends":
        statuses.add(404)
    if (dependant.path_params or dependant.query_params or dependant.body_params
            or method in ("post", "put")):
        statuses.add(422)
    return statuses


def _openapi_with_errors(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` that declares fleetlearn's error body on every operation.

    FastAPI documents a 422 as its own ``HTTPValidationError`` (``detail`` a list),
    which fleetlearn never answers; and only the statuses a route lists. Here every
    4xx/5xx an operation can answer points at :class:`ErrorBody`, guarded operations
    carry the bearer security scheme, and FastAPI's validation models are dropped.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = generate()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas["ErrorBody"] = body
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        spec["components"]["headers"] = {"RequestId": {
            "description": "The request's id: the client's X-Request-ID when it is 1-128 of "
                           "A-Z a-z 0-9 . _ : -, else a new one. The server's log lines for "
                           "the request carry it as request_id.",
            "schema": {"type": "string"}}}
        spec["components"]["securitySchemes"] = {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "An API key from 'fleetlearn keys create'."}}
        routes = {(r.path_format, m.lower()): r for r in api_routes(app) for m in r.methods}
        for path, operations in spec.get("paths", {}).items():
            for method, operation in operations.items():
                route = routes.get((path, method))
                if route is None:
                    continue
                responses = operation.setdefault("responses", {})
                declared = {int(code) for code in responses if code.isdigit()}
                for status in sorted(_error_statuses(route, method) | {
                        c for c in declared if c >= 400}):
                    entry = responses.setdefault(str(status), {})
                    if entry.get("description") in (None, "Validation Error"):
                        entry["description"] = _STATUS_TEXT.get(status, "Error.")
                    entry["content"] = {"application/json": {"schema": _ERROR_REF}}
                for entry in responses.values():  # every answer carries its request id
                    entry.setdefault("headers", {})["X-Request-ID"] = _REQUEST_ID_REF
                if role_of(route) is not None:
                    operation["security"] = [{"bearer": []}]
                    operation["x-fleetlearn-role"] = role_of(route)
        app.openapi_schema = spec
        return spec

    return openapi


def create_app(settings: ServeSettings | None = None, state: ServingState | None = None,
               extra_routers: list[APIRouter] | None = None, training: bool = True,
               request_id_header: bool = True) -> FastAPI:
    """Build the fleetlearn REST API.

    Parameters
    ----------
    settings : ServeSettings, optional
        Defaults, or ``FLEETLEARN_SERVE_*`` environment variables.
    state : ServingState, optional
        A prepared state (tests, Ray Serve replicas); built from ``settings`` otherwise.
    extra_routers : list of APIRouter, optional
        Mounted after fleetlearn's own.
    training : bool, default True
        Mount uploads and starting, cancelling and resuming runs. Ray Serve replicas
        pass False: they predict and read, and never keep uploads on their own disk or
        spawn a training driver.
    request_id_header : bool, default True
        Answer ``X-Request-ID`` (the client's, or a new one). Ray Serve replicas pass
        False: Ray's proxy gives every request an ``x-request-id`` (which the app
        logs) and answers it itself.

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
            # No automatic resume starts while the server stops (runs keep going: they
            # are their own processes).
            launcher = getattr(app.state, "fleetlearn_launcher", None)
            if launcher is not None:
                launcher.close()
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
    routers = [health.router, models.router, predict.router, stats.router, keys.router,
               datasets.router, runs.router, insights.router, cluster.router, catalog.router]
    if training:
        # Reports too: they reload the run's tables and cost seconds of CPU (see
        # routes/reports.py), not a replica's job.
        routers += [datasets.train_router, runs.train_router, reports.router]
    for router in (*routers, *(extra_routers or [])):
        app.include_router(router)
    app.add_middleware(_Instrument)
    # Around the whole stack, ServerErrorMiddleware included (add_middleware stays
    # inside it): build_middleware_stack is what Starlette calls on the first request.
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: _RequestId(  # type: ignore[method-assign]
        build(), header=request_id_header)
    _handlers(app)
    app.openapi = _openapi_with_errors(app)  # type: ignore[method-assign]
    return app
