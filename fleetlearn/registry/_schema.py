"""ORM mapping of the registry tables (``Sql*`` rows, never returned to callers).

The schema itself is created only by the Alembic migrations in ``migrations/``; this
module mirrors it for queries. ``tests/unit/test_registry_migrations.py`` checks the
two agree, so a column added here without a migration fails the tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "SqlRun",
    "SqlDataset",
    "SqlRunDataset",
    "SqlTrial",
    "SqlTrialUnit",
    "SqlModelVersion",
    "SqlAlias",
    "SqlApiKey",
    "SqlInferenceStats",
    "utcnow",
]

# Same names as the migration creates, so constraint errors can be recognised by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC.

    SQLite has no time zones: values are stored as naive UTC and tagged on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact); plain JSON text elsewhere.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class SqlRun(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(256))
    status: Mapped[str] = mapped_column(sa.String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who drives the run and how it is doing (API launcher: pid, host, log, status);
    # null for runs started from the CLI or Python.
    launcher: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class SqlDataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(128), unique=True)
    name: Mapped[str] = mapped_column(sa.String(256))
    source: Mapped[str | None] = mapped_column(sa.Text)
    n_rows: Mapped[int] = mapped_column(sa.BigInteger)
    n_features: Mapped[int] = mapped_column(sa.Integer)
    task: Mapped[str] = mapped_column(sa.String(32))
    target: Mapped[str] = mapped_column(sa.String(256))
    schema: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SqlRunDataset(Base):
    __tablename__ = "run_datasets"

    run_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    dataset_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.String(256))


class SqlTrial(Base):
    __tablename__ = "trials"
    __table_args__ = (sa.UniqueConstraint("run_id", "dataset_id", "model_name"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"))
    dataset_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE")
    )
    model_name: Mapped[str] = mapped_column(sa.String(256))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    units: Mapped[list[SqlTrialUnit]] = relationship(
        back_populates="trial", order_by="SqlTrialUnit.id", lazy="raise"
    )


class SqlTrialUnit(Base):
    __tablename__ = "trial_units"
    __table_args__ = (sa.UniqueConstraint("trial_id", "unit"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE")
    )
    unit: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(sa.Text)
    duration_s: Mapped[float | None] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    trial: Mapped[SqlTrial] = relationship(back_populates="units", lazy="raise")


class SqlModelVersion(Base):
    __tablename__ = "model_versions"
    # sqlite_autoincrement: never reuse the id of a deleted version, so version_stamp
    # (which includes max(id)) cannot come back to an earlier value.
    __table_args__ = (sa.UniqueConstraint("name", "version"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    version: Mapped[int] = mapped_column(sa.Integer)
    run_id: Mapped[str | None] = mapped_column(sa.String(32), sa.ForeignKey("runs.id"))
    trial_id: Mapped[int | None] = mapped_column(sa.Integer, sa.ForeignKey("trials.id"))
    dataset_id: Mapped[int | None] = mapped_column(sa.Integer, sa.ForeignKey("datasets.id"))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    input_schema: Mapped[dict[str, Any]] = mapped_column(JSONType)
    artifact_digest: Mapped[str] = mapped_column(sa.String(64), index=True)
    artifact_size: Mapped[int] = mapped_column(sa.BigInteger)
    # Exact type names held by the skops artifact, recorded at save (null before 0003).
    artifact_types: Mapped[list[str] | None] = mapped_column(JSONType)
    tags: Mapped[dict[str, Any]] = mapped_column(JSONType)
    description: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SqlAlias(Base):
    __tablename__ = "aliases"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["model_versions.name", "model_versions.version"],
            ondelete="CASCADE",
        ),
    )

    name: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    alias: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SqlApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    prefix: Mapped[str] = mapped_column(sa.String(16))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SqlInferenceStats(Base):
    __tablename__ = "inference_stats"
    __table_args__ = (sa.UniqueConstraint("replica", "model", "version", "window_start"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    replica: Mapped[str] = mapped_column(sa.String(64))
    model: Mapped[str] = mapped_column(sa.String(128))
    version: Mapped[int] = mapped_column(sa.Integer)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    window_s: Mapped[float] = mapped_column(sa.Float)
    requests: Mapped[int] = mapped_column(sa.BigInteger)
    errors: Mapped[int] = mapped_column(sa.BigInteger)
    rows: Mapped[int] = mapped_column(sa.BigInteger)
    latency_sum_ms: Mapped[float] = mapped_column(sa.Float)
    histogram: Mapped[dict[str, Any]] = mapped_column(JSONType)
    process: Mapped[dict[str, Any]] = mapped_column(JSONType)


class SqlLaunch(Base):
    """A training process an API launcher started, from its start on.

    Written before the run exists (the child checks its data and joins Ray first), so
    every API process sharing the registry sees the starting window; no foreign key to
    ``runs``: a launch that fails before recording never gets a run row.
    """

    __tablename__ = "launches"

    run_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    pid: Mapped[int] = mapped_column(sa.Integer)
    host: Mapped[str] = mapped_column(sa.String(255))
    log: Mapped[str] = mapped_column(sa.Text)
    # starting | recorded | failed | cancelled
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    error: Mapped[str | None] = mapped_column(sa.Text)
    exit_code: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
