"""Chart rollups: min/max summaries of metric series per power-of-four step bucket.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``metric_rollups``; series stored before it are rolled up on their first chart read."""
    op.create_table(
        "metric_rollups",
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("bucket", sa.BigInteger, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("first_step", sa.BigInteger, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("min_step", sa.BigInteger, nullable=True),
        sa.Column("min_value", sa.Double, nullable=True),
        sa.Column("max_step", sa.BigInteger, nullable=True),
        sa.Column("max_value", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("model_id", "name", "level", "bucket", name="pk_metric_rollups"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_metric_rollups_model_id_models", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    """Drop ``metric_rollups``."""
    op.drop_table("metric_rollups")
