"""Key scopes: read-only API keys.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``api_keys.read_only`` (existing keys keep full access: false)."""
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    """Drop ``api_keys.read_only``."""
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("read_only")
