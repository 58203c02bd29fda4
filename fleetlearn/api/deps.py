"""Dependencies of the routes, by name: the caller's role and the serving state.

A route declares what it needs in its signature::

    def list_keys(state: StateDep, _: AdminKey) -> ...

Roles include the ones before them: read < predict < train < admin. With
authentication off (a server on loopback with no keys, or ``auth="off"``) every
role dependency lets the caller through and yields ``None``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from fleetlearn.api.errors import HttpError
from fleetlearn.config import fleetlearn_home
from fleetlearn.registry import ApiKey
from fleetlearn.security import role_allows
from fleetlearn.serving import ServingState
from fleetlearn.training import Launcher

__all__ = [
    "AdminKey",
    "LauncherDep",
    "PredictKey",
    "ReadKey",
    "StateDep",
    "TrainKey",
    "launcher",
    "require",
    "serving_state",
]

log = logging.getLogger("fleetlearn.serving")

#: Answered with every 401, as RFC 9110 asks of a server that wants credentials.
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


#: Distinct client addresses labelled in the auth metrics; beyond it, "other".
_MAX_CLIENT_LABELS = 1000


def _client_label(state: ServingState, client: str) -> str:
    seen = state.auth_client_labels
    if client in seen or len(seen) < _MAX_CLIENT_LABELS:
        seen.add(client)
        return client
    return "other"


def _failed(state: ServingState, client: str) -> None:
    state.metrics.auth_failures.labels(_client_label(state, client)).inc()
    pause = state.auth_throttle.failed(client)
    if pause > 0:
        log.warning("%s keeps failing to authenticate: blocked for %.0f s", client, pause)


def require(role: str) -> Callable[[Request], Awaitable[ApiKey | None]]:
    """A dependency that lets through callers whose key has at least ``role``."""

    async def check(request: Request) -> ApiKey | None:
        state: ServingState = request.app.state.serving
        if not state.auth_required:
            return None
        client = request.client.host if request.client else "unknown"
        wait = state.auth_throttle.retry_after(client)
        if wait > 0:
            state.metrics.auth_throttled.labels(_client_label(state, client)).inc()
            raise HttpError(429, f"Too many failed authentications from {client}: wait "
                            f"{math.ceil(wait)} s, then send a valid key.", "TooManyRequests",
                            {"Retry-After": str(math.ceil(wait))})
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            _failed(state, client)
            raise HttpError(401, "An API key is required: send 'Authorization: Bearer <key>' "
                            "(create one with 'fleetlearn keys create --role "
                            f"{role}').", "Unauthorized", _CHALLENGE)
        key = state.authenticate(secret.strip())
        if key is None:
            _failed(state, client)
            raise HttpError(401, "Unknown or revoked API key: check the key, or ask an admin "
                            "for a new one ('fleetlearn keys list').", "Unauthorized",
                            _CHALLENGE)
        state.auth_throttle.succeeded(client)
        if not role_allows(key.role, role):
            raise HttpError(403, f"Key '{key.name}' has role '{key.role}'; this needs "
                            f"'{role}' or higher.", "Forbidden")
        request.scope.setdefault("state", {})["key"] = key.name
        return key

    # The role, readable from the route (the spec's 401/403 and the auth tests use it).
    check.fleetlearn_role = role  # type: ignore[attr-defined]
    return check


ReadKey = Annotated[ApiKey | None, Depends(require("read"))]
PredictKey = Annotated[ApiKey | None, Depends(require("predict"))]
TrainKey = Annotated[ApiKey | None, Depends(require("train"))]
AdminKey = Annotated[ApiKey | None, Depends(require("admin"))]


def serving_state(request: Request) -> ServingState:
    """The app's :class:`~fleetlearn.serving.ServingState` (built at start-up)."""
    return request.app.state.serving


StateDep = Annotated[ServingState, Depends(serving_state)]


def launcher(request: Request) -> Launcher:
    """The app's run :class:`~fleetlearn.training.Launcher` (made on first use)."""
    app = request.app
    current = getattr(app.state, "fleetlearn_launcher", None)
    if current is None:
        state: ServingState = app.state.serving
        current = Launcher(state.registry, fleetlearn_home() / "runs",
                           ray_address=state.settings.ray_address,
                           registry_url=state.settings.registry_url,
                           retries=state.settings.run_retries)
        app.state.fleetlearn_launcher = current
    return current


LauncherDep = Annotated[Launcher, Depends(launcher)]
