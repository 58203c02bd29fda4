"""Initial registry schema: runs, datasets, trials and their journal, model versions, aliases.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Migrations are frozen history: they use plain SQLAlchemy types, never the ORM module,
so later changes to ``_schema.py`` cannot change what this revision creates.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_created_at", "runs", ["created_at"])

    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("n_rows", sa.BigInteger(), nullable=False),
        sa.Column("n_features", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("schema", JSON, nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("fingerprint", name="uq_datasets_fingerprint"),
    )

    op.create_table(
        "run_datasets",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "dataset_id", name="pk_run_datasets"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_datasets_run_id_runs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_run_datasets_dataset_id_datasets",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "trials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(256), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_trials"),
        sa.UniqueConstraint(
            "run_id", "dataset_id", "model_name", name="uq_trials_run_id_dataset_id_model_name"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_trials_run_id_runs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_trials_dataset_id_datasets",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "trial_units",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_trial_units"),
        sa.UniqueConstraint("trial_id", "unit", name="uq_trial_units_trial_id_unit"),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trials.id"], name="fk_trial_units_trial_id_trials", ondelete="CASCADE"
        ),
    )

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("trial_id", sa.Integer(), nullable=True),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("input_schema", JSON, nullable=False),
        sa.Column("artifact_digest", sa.String(64), nullable=False),
        sa.Column("artifact_size", sa.BigInteger(), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_model_versions_run_id_runs"),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trials.id"], name="fk_model_versions_trial_id_trials"
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_model_versions_dataset_id_datasets"
        ),
        # Never reuse a deleted version's id: Registry.version_stamp relies on max(id).
        sqlite_autoincrement=True,
    )
    op.create_index("ix_model_versions_artifact_digest", "model_versions", ["artifact_digest"])

    op.create_table(
        "aliases",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("name", "alias", name="pk_aliases"),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["model_versions.name", "model_versions.version"],
            name="fk_aliases_name_version_model_versions",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    for table in (
        "aliases",
        "model_versions",
        "trial_units",
        "trials",
        "run_datasets",
        "datasets",
        "runs",
    ):
        op.drop_table(table)
