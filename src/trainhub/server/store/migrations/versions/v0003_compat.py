"""Datasets and Ultralytics compatibility fields.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Nothing yet: reserved so that parallel work keeps one linear migration history."""


def downgrade() -> None:
    """Nothing yet."""
