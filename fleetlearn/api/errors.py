"""fleetlearn's one error model over HTTP: the body, the 422 formatter, status mapping.

Every 4xx/5xx answer has the same shape, :class:`ErrorBody`::

    {"detail": "one line: what was wrong and what to do",
     "error": "the kind (NotFoundError, InputError, ValidationError, ...)",
     "errors": [{"loc": [...], "msg": "...", "type": "..."}],   # validation only
     "more": 0}                                                 # problems not listed

Where an error comes from, and who turns it into that body:

- :class:`HttpError`, raised by a dependency or a route (auth, conflicts, uploads);
- a :class:`~fleetlearn.errors.FleetlearnError` from the layers below, mapped by
  :func:`status_of` (not found 404, integrity 500, registry/cluster 503, else 422;
  a registry that is down for now also sends ``Retry-After``, :func:`retry_after_of`);
- FastAPI's request validation, formatted once by :func:`validation_error`;
- Starlette's own 404/405 (no route, wrong method: ``Allow`` kept);
- anything else: a 500 naming the exception type, the traceback in the server log.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from fleetlearn.errors import (
    ArtifactIntegrityError,
    ClusterError,
    ConflictError,
    FleetlearnError,
    NotFoundError,
    RegistryError,
    RegistryUnavailableError,
)
from fleetlearn.training import options_error

__all__ = [
    "ErrorBody",
    "ErrorProblem",
    "HttpError",
    "ORJSONResponse",
    "error_response",
    "retry_after_of",
    "status_of",
    "validation_error",
]

#: Pydantic's names of union branches in an error's ``loc`` ("str", "dict[...]"):
#: not fields of the request, so they are dropped from what a caller sees.
_BRANCHES = {"str", "int", "float", "bool", "list", "dict", "DatasetRef"}


class ORJSONResponse(JSONResponse):
    """JSON via orjson: several times faster than the standard library for big bodies."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class ErrorProblem(BaseModel):
    """One problem of a request: where (``loc``), what (``msg``), its kind (``type``)."""

    loc: list[Any] = Field(examples=[["body", "records", 0, "petal_length"]])
    msg: str = Field(examples=["Row 0: expected a number, got 'long'."])
    type: str = Field(examples=["type"])


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: what went wrong and what to do."""

    detail: str = Field(examples=["No model 'iris-rf'. Did you mean 'iris-random_forest'?"])
    error: str = Field(examples=["NotFoundError"])
    errors: list[ErrorProblem] | None = Field(
        None, description="Every problem found (validation and input errors).")
    more: int | None = Field(None, description="Problems found beyond those listed.")


def error_response(status: int, detail: str, error: str,
                   headers: dict[str, str] | None = None, **extra: Any) -> ORJSONResponse:
    """The JSON answer of an error: ``{"detail", "error", **extra}``."""
    return ORJSONResponse({"detail": detail, "error": error, **extra}, status_code=status,
                          headers=headers)


class HttpError(Exception):
    """An HTTP error raised from a dependency or route (status, message, kind).

    >>> HttpError(409, "Run 3f2a is finished: nothing to cancel.", "Conflict").status
    409
    """

    def __init__(self, status: int, detail: str, error: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.error, self.headers = status, detail, error, headers


def status_of(exc: FleetlearnError) -> int:
    """The HTTP status of a fleetlearn error.

    >>> from fleetlearn.errors import NotFoundError
    >>> status_of(NotFoundError("no run 'x'"))
    404
    """
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, ArtifactIntegrityError):
        return 500
    if isinstance(exc, RegistryError | ClusterError):
        return 503
    return 422


#: Seconds a client is told to wait (``Retry-After``) when the registry is down for now.
REGISTRY_RETRY_AFTER_S = 5


def retry_after_of(exc: FleetlearnError) -> dict[str, str] | None:
    """The ``Retry-After`` header of an error that retrying can fix, else None.

    >>> from fleetlearn.errors import RegistryUnavailableError
    >>> retry_after_of(RegistryUnavailableError("down"))
    {'Retry-After': '5'}
    """
    if isinstance(exc, RegistryUnavailableError):
        return {"Retry-After": str(REGISTRY_RETRY_AFTER_S)}
    return None


def validation_error(exc: RequestValidationError, *,
                     run_body: bool = False) -> ORJSONResponse:
    """The one 422 of a request FastAPI could not validate (query, path or body).

    For a run body (``POST /v1/runs``, :class:`~fleetlearn.training.RunRequest`) whose
    problems are all in the body, ``detail`` is the run options' own sentence
    (:func:`~fleetlearn.training.options_error`: "The 'folds' option must be an int in
    the range [2, inf). Got 1 instead."), as the CLI and run files word it; ``errors``
    keeps every problem's location.
    """
    problems = []
    for e in exc.errors():
        loc = [p for p in e.get("loc", ()) if not isinstance(p, str) or not (
            "[" in p or p in _BRANCHES or p.startswith("function-"))]
        problems.append({"loc": loc, "msg": str(e.get("msg", "")),
                         "type": str(e.get("type", ""))})
    # Of a union's alternatives, the deepest problem is the one that says what is wrong.
    first = max(problems, key=lambda p: len(p["loc"])) if problems else {
        "loc": ["body"], "msg": "invalid"}
    part = str(first["loc"][0]) if first["loc"] else "body"
    where = ".".join(str(p) for p in first["loc"][1:]) or part
    what = {"query": "query parameter", "path": "path", "header": "header"}.get(
        part, "request body")
    detail = f"The {what} is not valid: {where}: {first['msg']}."
    raw = exc.errors()
    if run_body and raw and all(tuple(e.get("loc", ()))[:1] == ("body",)
                                and e.get("type") != "json_invalid"
                                and len(tuple(e["loc"])) > 1 for e in raw):
        detail = str(options_error(raw))
    elif len(problems) > 1:
        detail += f" ({len(problems)} problems; see 'errors'.)"
    return error_response(422, detail, "ValidationError", errors=problems)
