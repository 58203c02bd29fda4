"""Opening the registry database: URL checks, SQLite pragmas, fail-fast connects."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from fleetlearn.errors import RegistryError, RegistryUnavailableError

__all__ = [
    "create_registry_engine",
    "mask_url",
    "json_dumps",
    "sentence",
    "SQLITE_BUSY_TIMEOUT_S",
    "is_transient",
    "connect_error",
]

SQLITE_BUSY_TIMEOUT_S = 30
PG_CONNECT_TIMEOUT_S = 5
# Execution option read by the SQLite "begin" hook below: read-only sessions ask for a
# plain (deferred) transaction so they never wait for writers.
SQLITE_BEGIN_OPTION = "fleetlearn_sqlite_begin"

_PASSWORD_RE = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_SUPPORTED = "sqlite:///path/to/registry.db or postgresql+psycopg://user:password@host:5432/db"


def mask_url(url: str | sa.URL) -> str:
    """Return ``url`` with its password replaced by ``***`` (safe to print or log).

    Examples
    --------
    >>> mask_url("postgresql+psycopg://me:secret@db:5432/reg")
    'postgresql+psycopg://me:***@db:5432/reg'
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD_RE.sub(r"\1***@", str(url))


def sentence(text: object) -> str:
    """Return ``text`` on one line, ending with a full stop unless it already has one."""
    line = " ".join(str(text).split())
    return line if line.endswith((".", "?", "!")) else f"{line}."


def _jsonable(value: Any) -> Any:
    # Scores and payloads often hold numpy scalars/arrays and NaN; PostgreSQL JSONB
    # rejects NaN, so non-finite floats are stored as null on every backend alike.
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, without importing numpy
        return _jsonable(value.tolist())
    if hasattr(value, "item"):
        return _jsonable(value.item())
    raise TypeError(
        f"Cannot store a {type(value).__name__} in the registry: JSON fields accept dicts, "
        "lists, strings, numbers, booleans and None (numpy values are converted)."
    )


def json_dumps(value: Any) -> str:
    """Serialise a JSON column value (numpy values converted, NaN/inf stored as null)."""
    return json.dumps(_jsonable(value), allow_nan=False)


def create_registry_engine(url: str) -> tuple[Engine, str]:
    """Build the engine for ``url``; return it with the masked URL.

    Only SQLite and PostgreSQL are supported: the registry relies on their
    ``INSERT ... ON CONFLICT`` upserts. ``postgresql://`` and ``postgres://`` use
    psycopg 3.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: e.g. a non-numeric port
        raise RegistryError(
            f"Invalid registry URL {mask_url(url)!r}: {sentence(exc)} Expected {_SUPPORTED} "
            "(check --registry / FLEETLEARN_REGISTRY_URL)."
        ) from exc
    masked = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        masked = parsed.render_as_string(hide_password=True)
        kwargs: dict[str, Any] = {
            "connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT_S,
                             "application_name": "fleetlearn"},
            "pool_pre_ping": True,
        }  # fmt: skip
    elif backend == "sqlite":
        kwargs = _sqlite_kwargs(parsed, masked)
    else:
        raise RegistryError(
            f"Unsupported registry URL scheme {parsed.drivername!r} in {masked}: expected "
            f"{_SUPPORTED} (check --registry / FLEETLEARN_REGISTRY_URL)."
        )
    try:
        engine = sa.create_engine(parsed, json_serializer=json_dumps, **kwargs)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        hint = "pip install 'fleetlearn[postgres]'" if backend.startswith("postgres") else ""
        raise RegistryError(
            f"Cannot open registry {masked}: the database driver is not installed ({exc}). "
            f"{hint}".strip()
        ) from exc
    if backend == "sqlite":
        _install_sqlite_hooks(engine, in_memory=kwargs.get("poolclass") is StaticPool)
    return engine, masked


def _sqlite_kwargs(parsed: sa.URL, masked: str) -> dict[str, Any]:
    database = parsed.database
    if not database or database == ":memory:":
        # One shared connection, otherwise every connection sees its own empty database.
        return {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    path = Path(database).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RegistryError(
            f"Cannot create the folder of registry {masked}: {exc}. Choose a writable "
            "location with --registry / FLEETLEARN_REGISTRY_URL."
        ) from exc
    return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}}


def _install_sqlite_hooks(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions start (the
        # module's implicit BEGIN is deferred and would not take the write lock).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
            if not in_memory:
                # WAL: readers (serving) never block the writer (training) and vice versa.
                _set_wal(cur)
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writers take the write lock up front (BEGIN IMMEDIATE): a deferred transaction
        # that reads then writes fails at once with SQLITE_BUSY when another process
        # wrote in between, while IMMEDIATE simply waits busy_timeout for its turn.
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _set_wal(cur: sqlite3.Cursor) -> None:
    """Switch the file to WAL, waiting (as busy_timeout would) while it is locked.

    The mode is stored in the file, so this is a no-op read once any process set it.
    Switching a fresh file needs its exclusive lock, and SQLite answers "database is
    locked" at once, without calling the busy handler, when another process holds a
    lock on it then (several processes opening one new registry at the same moment).
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def is_postgres(engine: Engine) -> bool:
    """Return whether ``engine`` talks to PostgreSQL."""
    return engine.dialect.name == "postgresql"


#: SQLite messages of a database that is busy for now (another writer), not broken.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")


def is_transient(exc: BaseException, masked: str) -> bool:
    """Whether a driver error means "the database is not reachable now, try again".

    Every ``OperationalError`` from PostgreSQL (refused, closed, shutting down, too
    many connections) is; for SQLite only "locked"/"busy" is: a missing folder or a
    corrupt file will not heal by retrying.
    """
    if masked.startswith("postgres"):
        return True
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(t in text for t in _SQLITE_TRANSIENT)


def describe_connect_error(masked: str, exc: BaseException) -> str:
    """Return a one-line, user-facing explanation of a failed connection."""
    detail = sentence(getattr(exc, "orig", None) or exc)
    if masked.startswith("postgres"):
        hint = "Is PostgreSQL running and reachable? Check --registry / FLEETLEARN_REGISTRY_URL."
    else:
        hint = (
            "Check that the file is a fleetlearn registry on a local, writable disk, or "
            "point --registry / FLEETLEARN_REGISTRY_URL elsewhere."
        )
    return f"Cannot use registry {masked}: {detail} {hint}"


def connect_error(masked: str, exc: BaseException) -> RegistryError:
    """The error to raise for a failed connection or statement: a
    :class:`~fleetlearn.errors.RegistryUnavailableError` when retrying can help."""
    text = describe_connect_error(masked, exc)
    if is_transient(exc, masked):
        return RegistryUnavailableError(
            f"{text} The registry is unavailable for now: retry in a few seconds (writes "
            "are not applied until it is back)."
        )
    return RegistryError(text)
