"""The ids a log line carries (run, model, version, request), held in a context variable.

A :class:`contextvars.ContextVar` rather than a global or a thread-local: uvicorn runs
each request in its own asyncio task, and a task starts with a *copy* of the context,
so two requests in flight never see each other's ``request_id``; a thread started with
``contextvars.copy_context().run`` gets its starter's ids.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["CONTEXT_FIELDS", "AccessFields", "ContextFilter", "bind_log_context", "log_context",
           "log_context_ids", "request_started"]

#: The ids a log line may carry, in the order they are written.
CONTEXT_FIELDS = ("run_id", "model", "version", "request_id")

_ids: ContextVar[dict[str, Any]] = ContextVar("fleetlearn_log_context", default={})  # noqa: B039 - never mutated, only replaced
#: When the current request arrived (``time.perf_counter()``), for the access line.
_request_started: ContextVar[float | None] = ContextVar("fleetlearn_request_started",
                                                        default=None)


def log_context_ids() -> dict[str, Any]:
    """The ids bound in the current context (a copy).

    Examples
    --------
    >>> with log_context(run_id="3f2a9c01b7de"):
    ...     log_context_ids()
    {'run_id': '3f2a9c01b7de'}
    """
    return dict(_ids.get())


def _merged(ids: dict[str, Any]) -> dict[str, Any]:
    unknown = set(ids) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"Unknown log context field(s) {sorted(unknown)}; expected some of "
                         f"{', '.join(CONTEXT_FIELDS)}.")
    return {**_ids.get(), **{k: v for k, v in ids.items() if v is not None}}


@contextlib.contextmanager
def log_context(*, started: float | None = None, **ids: Any) -> Iterator[None]:
    """Every log record made inside the block carries ``ids`` (None values are skipped).

    ``started`` marks the start of an HTTP request (``time.perf_counter()``); the
    access line's ``duration_ms`` is measured from it.

    Examples
    --------
    >>> with log_context(model="iris-rf", version=3):
    ...     log_context_ids()["version"]
    3
    >>> log_context_ids()
    {}
    """
    token = _ids.set(_merged(ids))
    started_token = _request_started.set(started) if started is not None else None
    try:
        yield
    finally:
        _ids.reset(token)
        if started_token is not None:
            _request_started.reset(started_token)


def bind_log_context(**ids: Any) -> None:
    """Add ``ids`` to the current context until the enclosing :func:`log_context` ends
    (or, outside one, for the rest of this context): for an id learnt half-way, such as
    the id of a run just recorded, or the version a model reference resolved to."""
    _ids.set(_merged(ids))


def request_started() -> float | None:
    """When the current request arrived (``perf_counter``), or None outside one."""
    return _request_started.get()


class ContextFilter(logging.Filter):
    """Copies the current context's ids onto each record (an ``extra=`` given to the
    call wins), so every handler and formatter sees them as record attributes."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _ids.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class AccessFields(logging.Filter):
    """Turns uvicorn's access record (``'%s - "%s %s HTTP/%s" %d'`` with its args) into
    fields: ``client``, ``method``, ``path``, ``http_version``, ``status``, and
    ``duration_ms`` from the request's arrival to its response's start (uvicorn logs the
    line when the status is sent)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, http_version, status = args
            record.client, record.method, record.path = client, method, path
            record.http_version, record.status = http_version, status
            started = _request_started.get()
            if started is not None and not hasattr(record, "duration_ms"):
                record.duration_ms = round((time.perf_counter() - started) * 1e3, 3)
        return True
