"""SQL of anonymous usage events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.tables import events

__all__ = ["count_by", "count_installs", "insert_events"]


def insert_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert a batch of event rows in one statement."""
    if rows:
        conn.execute(sa.insert(events), list(rows))


def count_by(conn: Connection, column: str) -> dict[str, int]:
    """Event counts grouped by one column (None grouped as ``"unknown"``)."""
    col = events.c[column]
    rows = conn.execute(sa.select(col, sa.func.count()).group_by(col))
    return {("unknown" if value is None else str(value)): int(n) for value, n in rows}


def count_installs(conn: Connection) -> int:
    """Number of distinct install ids."""
    return int(conn.execute(sa.select(sa.func.count(sa.distinct(events.c.install_id)))).scalar_one())
