"""Datasets and Ultralytics compatibility tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create datasets, compat_runs, compat_uploads and server_secrets."""
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("task", sa.String(200), nullable=True),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
    )
    op.create_index("ix_datasets_name", "datasets", ["name"])
    op.create_index("ix_datasets_created_at", "datasets", ["created_at"])
    op.create_table(
        "compat_runs",
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("run_count", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_compat_runs"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_compat_runs_model_id_models", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "compat_uploads",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("completed_at", sa.DateTime, nullable=True),
        sa.Column("promoted_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_compat_uploads"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_compat_uploads_model_id_models", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_compat_uploads_model_id", "compat_uploads", ["model_id"])
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_server_secrets"),
    )


def downgrade() -> None:
    """Drop the four tables."""
    for table in ("server_secrets", "compat_uploads", "compat_runs", "datasets"):
        op.drop_table(table)
