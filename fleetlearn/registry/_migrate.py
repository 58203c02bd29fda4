"""Bringing a registry database to the current schema, safely from many processes."""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from fleetlearn.errors import RegistryError
from fleetlearn.registry._engine import SQLITE_BEGIN_OPTION, is_postgres

__all__ = ["MIGRATIONS_DIR", "alembic_config", "head_revision", "upgrade_to_head"]

# Package-relative, so migrations run the same from a checkout and an installed wheel.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant bigint: serialises schema upgrades across every process sharing a database.
_PG_MIGRATION_LOCK = 0x464C_4D49_4752  # "FLMIGR"


def alembic_config() -> Config:
    """Return an Alembic config pointing at the packaged migrations (no alembic.ini)."""
    cfg = Config()
    # ConfigParser interpolation: a '%' in the install path must be doubled.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


@functools.cache
def head_revision() -> str:
    """Return the newest migration revision shipped with this fleetlearn."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # at least 0001 ships with the package
    return head


def _current_revision(engine: sa.Engine) -> str | None:
    with engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"}) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: sa.Engine, masked_url: str) -> None:
    """Upgrade the database behind ``engine`` to the newest schema, if needed.

    Safe when several processes open a fresh registry at once: on PostgreSQL the
    upgrade runs under a transaction-level advisory lock (and its DDL is transactional);
    on SQLite it runs inside one ``BEGIN IMMEDIATE`` transaction, so the second process
    waits for the first, then finds the schema at head and does nothing.
    """
    head = head_revision()
    if _current_revision(engine) == head:  # the common case: no lock, one cheap query
        return
    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            if is_postgres(engine):
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": _PG_MIGRATION_LOCK})  # fmt: skip
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except CommandError as exc:
        # Typically: the database was migrated by a newer fleetlearn.
        raise RegistryError(
            f"Cannot upgrade registry {masked_url} to schema {head}: {exc}. If a newer "
            "fleetlearn created this registry, upgrade fleetlearn on this machine."
        ) from exc
