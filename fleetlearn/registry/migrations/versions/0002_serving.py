"""Serving: API keys (hashes only) and inference statistics per time window.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Frozen history: plain SQLAlchemy types, never the ORM module.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("last_used_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "inference_stats",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("replica", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ts("window_start"),
        sa.Column("window_s", sa.Float(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("histogram", JSON, nullable=False),
        sa.Column("process", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inference_stats"),
        sa.UniqueConstraint(
            "replica", "model", "version", "window_start",
            name="uq_inference_stats_replica_model_version_window_start",
        ),
    )
    op.create_index(
        "ix_inference_stats_window_start", "inference_stats", ["window_start"]
    )


def downgrade() -> None:
    op.drop_table("inference_stats")
    op.drop_table("api_keys")
