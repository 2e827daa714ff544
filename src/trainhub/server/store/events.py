"""SQL of anonymous usage events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.dialects import upsert
from trainhub.server.store.tables import events

__all__ = ["count_by", "count_installs", "existing_event_ids", "insert_events"]


def existing_event_ids(conn: Connection, event_ids: Sequence[str]) -> set[str]:
    """Which of ``event_ids`` are already stored."""
    if not event_ids:
        return set()
    query = sa.select(events.c.event_id).where(events.c.event_id.in_(sorted(set(event_ids))))
    return {str(v) for v in conn.execute(query).scalars()}


def insert_events(conn: Connection, dialect: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert a batch of event rows in one statement; a row whose ``event_id`` exists is skipped."""
    if rows:
        stmt = upsert(dialect, events).on_conflict_do_nothing(index_elements=["event_id"])
        conn.execute(stmt, list(rows))


def _of(query: sa.Select[Any], user_id: str | None) -> sa.Select[Any]:
    return query if user_id is None else query.where(events.c.user_id == user_id)


def count_by(conn: Connection, column: str, user_id: str | None = None) -> dict[str, int]:
    """Event counts grouped by one column (None grouped as ``"unknown"``); of one user if given."""
    col = events.c[column]
    rows = conn.execute(_of(sa.select(col, sa.func.count()).group_by(col), user_id))
    return {("unknown" if value is None else str(value)): int(n) for value, n in rows}


def count_installs(conn: Connection, user_id: str | None = None) -> int:
    """Number of distinct install ids (of one user's events if given)."""
    query = _of(sa.select(sa.func.count(sa.distinct(events.c.install_id))), user_id)
    return int(conn.execute(query).scalar_one())
