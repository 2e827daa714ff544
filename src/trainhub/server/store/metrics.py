"""SQL of metric points: batch upserts and reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.charts import refresh_rollups
from trainhub.server.store.dialects import upsert
from trainhub.server.store.tables import metric_points

__all__ = ["read_points", "read_series", "upsert_points"]


def upsert_points(conn: Connection, dialect: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``{model_id, name, step, value}`` rows; an existing (model, name, step) is replaced.

    One executemany statement per batch: a re-sent epoch overwrites, never duplicates. The chart
    rollups of the written series are refreshed in the same transaction.
    """
    if not rows:
        return
    stmt = upsert(dialect, metric_points)
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_id", "name", "step"], set_={"value": stmt.excluded.value}
    )
    conn.execute(stmt, list(rows))
    # Same transaction: the chart rollups never disagree with the points (see store/charts.py).
    by_model: dict[str, list[tuple[str, int]]] = {}
    for r in rows:
        by_model.setdefault(r["model_id"], []).append((r["name"], r["step"]))
    for model_id, points in by_model.items():
        refresh_rollups(conn, dialect, model_id, points)


def read_points(conn: Connection, model_id: str) -> list[tuple[int, str, float | None]]:
    """Every ``(step, name, value)`` of a model, by step then name."""
    mp = metric_points
    query = (
        sa.select(mp.c.step, mp.c.name, mp.c.value)
        .where(mp.c.model_id == model_id)
        .order_by(mp.c.step, mp.c.name)
    )
    return [(int(r.step), str(r.name), r.value) for r in conn.execute(query)]


def read_series(conn: Connection, model_id: str, name: str) -> list[tuple[int, float | None]]:
    """One metric of a model as ``(step, value)`` pairs, by step."""
    mp = metric_points
    query = (
        sa.select(mp.c.step, mp.c.value)
        .where(mp.c.model_id == model_id, mp.c.name == name)
        .order_by(mp.c.step)
    )
    return [(int(r.step), r.value) for r in conn.execute(query)]
