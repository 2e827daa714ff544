"""Liveness, event idempotency and delivery bookkeeping (durable delivery).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Nothing yet: reserved so that parallel work keeps one linear migration history."""


def downgrade() -> None:
    """Nothing yet."""
