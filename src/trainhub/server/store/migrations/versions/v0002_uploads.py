"""Upload sessions of chunked checkpoint uploads (the `uploads` table).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``uploads`` (chunked checkpoint upload sessions)."""
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=True),
        sa.Column("is_best", sa.Boolean, nullable=False),
        sa.Column("map", sa.Double, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("part_size", sa.BigInteger, nullable=False),
        sa.Column("storage_id", sa.String(200), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("bytes_received", sa.BigInteger, nullable=False),
        sa.Column("already_present", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_uploads"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_uploads_model_id_models", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_uploads_model_id", "uploads", ["model_id"])
    op.create_index("ix_uploads_expires_at", "uploads", ["expires_at"])


def downgrade() -> None:
    """Drop ``uploads``."""
    op.drop_table("uploads")
