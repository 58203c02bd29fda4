"""Alembic environment of the fleetlearn registry.

fleetlearn runs migrations in code (``fleetlearn.registry._migrate``) and hands this
script an open connection through ``config.attributes["connection"]``: the caller
owns the transaction and the lock around it. Without a connection (``alembic``
command line during development) it connects to ``sqlalchemy.url`` itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from fleetlearn.registry._schema import Base

try:
    config = context.config
except AttributeError:  # imported outside Alembic, e.g. by pytest --doctest-modules
    config = None
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds tables.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if config is None:
    pass
elif context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
