"""Launcher state per run, and the type list of each model artifact.

``runs.launcher``: who drives the run (API launcher: child PID, host, log, status,
exit code, heartbeat), so any API process can report, cancel or resume any run, and a
run whose driver died can be told apart from one still running.
``model_versions.artifact_types``: the exact type names the skops artifact holds,
recorded at save, checked against the trusted-type allow-list at load.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Frozen history: plain SQLAlchemy types, never the ORM module.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("launcher", JSON, nullable=True))
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("artifact_types", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("artifact_types")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("launcher")
