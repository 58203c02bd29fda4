"""Launches: a training process an API launcher started, visible before its run exists.

``launches`` holds one row per ``fleetlearn train`` child an API server starts (run id
chosen up front, pid, host, log, status ``starting`` / ``recorded`` / ``failed`` /
``cancelled``, error, exit code, times), written when the process is spawned, so every
API process sharing the registry reports a starting run, and a launch that failed
before the child recorded its run reports its error, without a half-written run row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Frozen history: plain SQLAlchemy types, never the ORM module.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "launches",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_launches"),
    )
    op.create_index("ix_launches_status", "launches", ["status"])


def downgrade() -> None:
    op.drop_index("ix_launches_status", table_name="launches")
    op.drop_table("launches")
