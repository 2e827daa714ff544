"""Upload sessions, liveness and server-side rate limits (durable delivery).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Nothing yet: reserved so that parallel work keeps one linear migration history."""


def downgrade() -> None:
    """Nothing yet."""
