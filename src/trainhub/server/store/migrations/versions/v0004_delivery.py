"""Liveness, event idempotency and delivery bookkeeping (durable delivery).

* ``models.heartbeat_interval``: the interval the client sent with its last heartbeat (seconds).
* ``models.last_seen_at``: the last sign of life (heartbeat, metrics, checkpoint); the status shown
  (``training`` / ``stalled`` / ``crashed``) is computed from it at read time.
* ``events.event_id``: the client-made id of a usage event, unique, so a re-sent event is stored once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the liveness columns to ``models`` and ``event_id`` (unique) to ``events``."""
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("heartbeat_interval", sa.Double, nullable=True))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime, nullable=True))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("event_id", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_events_event_id", ["event_id"])


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_event_id", type_="unique")
        batch.drop_column("event_id")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("last_seen_at")
        batch.drop_column("heartbeat_interval")
