"""SQL of metric points: batch upserts and reads."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.charts import add_points, driver_sql, pg_unnest
from trainhub.server.store.dialects import lock_keys
from trainhub.server.store.tables import metric_points

__all__ = ["existing_steps", "read_points", "read_series", "upsert_points", "upsert_series"]


def upsert_points(
    conn: Connection, dialect: str, rows: Sequence[Mapping[str, Any]]
) -> set[tuple[str, str, int]]:
    """Insert ``{model_id, name, step, value}`` rows; an existing (model, name, step) is replaced.

    One executemany statement per batch: a re-sent epoch overwrites, never duplicates. The chart
    rollups of the written series are updated in the same transaction (see
    :func:`~trainhub.server.store.charts.add_points`).

    Returns:
        The ``(model_id, name, step)`` of the rows that replaced a stored point.
    """
    if not rows:
        return set()
    # The last of several rows with one (model, name, step) wins, as it would row by row; one
    # row per key also keeps PostgreSQL's multi-row ON CONFLICT from touching a row twice.
    latest: dict[str, dict[tuple[str, int], float | None]] = {}
    for r in rows:
        latest.setdefault(r["model_id"], {})[(r["name"], int(r["step"]))] = r["value"]
    if len(latest) > 1:
        # Every model's lock first, in sorted order (two writers of the same models never
        # deadlock); upsert_series takes its own again, which the transaction already holds.
        lock_keys(conn, dialect, [f"metrics:{model_id}" for model_id in latest])
    replaced: set[tuple[str, str, int]] = set()
    for model_id, points in latest.items():
        stored = upsert_series(conn, dialect, model_id, points)
        replaced.update((model_id, name, step) for name, step in stored)
    return replaced


def upsert_series(
    conn: Connection, dialect: str, model_id: str, points: Mapping[tuple[str, int], float | None]
) -> set[tuple[str, int]]:
    """:func:`upsert_points` for one model's ``(name, step) -> value`` (the metrics route's form);
    returns the ``(name, step)`` that replaced a stored point."""
    if not points:
        return set()
    # Another worker may write the same series: its rollup refresh must not interleave with ours.
    lock_keys(conn, dialect, [f"metrics:{model_id}"])
    flat = [(model_id, name, step, value) for (name, step), value in points.items()]
    if dialect == "postgresql":
        # One statement; the upsert itself tells which rows existed (xmax is set on an update).
        sql = driver_sql(dialect, _UPSERT_POINT_PG_SQL)
        returned = pg_unnest(conn, sql, ("text", "text", "int", "float8"), flat)
        replaced = {(str(n), int(st)) for _, n, st, updated in returned if updated}
    else:
        replaced = _stored(conn, model_id, points)
        conn.exec_driver_sql(driver_sql(dialect, _UPSERT_POINT_SQL), flat)
    # Same transaction: the chart rollups never disagree with the points (see store/charts.py).
    add_points(conn, dialect, model_id, points, replaced)
    return replaced


def _stored(conn: Connection, model_id: str, points: Collection[tuple[str, int]]) -> set[tuple[str, int]]:
    """Which ``(name, step)`` of ``points`` the model already has (index probes on the primary key).

    A batch of several steps per series usually comes after everything stored (a job sends its
    epochs in order): one probe per series for its highest stored step then shows that nothing is
    replaced, instead of one probe per point (10 instead of 1,000 for a 1,000-point batch).
    """
    lowest: dict[str, int] = {}
    for name, step in points:
        if step < lowest.get(name, step + 1):
            lowest[name] = step
    if len(lowest) < len(points):
        highest = _highest_steps(conn, model_id, sorted(lowest))
        if all(_below(highest.get(name), lo) for name, lo in lowest.items()):
            return set()
    return _probe(conn, model_id, points)


def _below(highest: int | None, step: int) -> bool:
    return highest is None or highest < step


def _highest_steps(conn: Connection, model_id: str, names: Sequence[str]) -> dict[str, int | None]:
    """Each series' highest stored step (None: no point), one index seek per name."""
    found: dict[str, int | None] = {}
    dialect = conn.dialect.name
    for i in range(0, len(names), 200):
        chunk = names[i : i + 200]
        # A scalar MAX per name: the primary key (model_id, name, step) answers each with one seek.
        one = "SELECT ?, (SELECT MAX(step) FROM metric_points WHERE model_id = ? AND name = ?)"
        params = [p for name in chunk for p in (name, model_id, name)]
        rows = _fetchall(conn, driver_sql(dialect, " UNION ALL ".join([one] * len(chunk))), params)
        found.update((str(n), None if s is None else int(s)) for n, s in rows)
    return found


def _probe(conn: Connection, model_id: str, points: Collection[tuple[str, int]]) -> set[tuple[str, int]]:
    """:func:`_stored` by one primary-key probe per point."""
    names = sorted({name for name, _ in points})
    steps = sorted({step for _, step in points})
    found: set[tuple[str, int]] = set()
    dialect = conn.dialect.name
    # Chunks well under every database's bound-parameter limit.
    for i in range(0, len(steps), 500):
        step_chunk = steps[i : i + 500]
        for j in range(0, len(names), 200):
            name_chunk = names[j : j + 200]
            sql = (
                "SELECT name, step FROM metric_points WHERE model_id = ?"
                f" AND name IN ({', '.join('?' * len(name_chunk))})"
                f" AND step IN ({', '.join('?' * len(step_chunk))})"
            )
            result = conn.exec_driver_sql(driver_sql(dialect, sql), (model_id, *name_chunk, *step_chunk))
            found.update((str(n), int(s)) for n, s in result)
    return found & set(points)


#: Run through the driver directly (as store/charts.py's rollup upsert, and for the same reason).
_UPSERT_POINT_SQL = (
    "INSERT INTO metric_points (model_id, name, step, value) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (model_id, name, step) DO UPDATE SET value = excluded.value"
)
_UPSERT_POINT_PG_SQL = (
    "INSERT INTO metric_points (model_id, name, step, value)"
    " SELECT * FROM unnest(?::text[], ?::text[], ?::int[], ?::float8[])"
    " ON CONFLICT (model_id, name, step) DO UPDATE SET value = excluded.value"
    " RETURNING model_id, name, step, (xmax <> 0)"
)


def existing_steps(
    conn: Connection, model_id: str, steps: Sequence[int], names: Sequence[str] | None = None
) -> set[int]:
    """Which of ``steps`` already have a stored point of the model (of one of ``names``, if given).

    Give ``names`` (the batch's metric names) on hot paths: the primary key is (model, name, step),
    so with names every check is an index probe; without them the model's points are scanned.
    """
    if not steps:
        return set()
    found: set[int] = set()
    wanted = sorted(set(steps))
    name_list = sorted(set(names)) if names else []
    dialect = conn.dialect.name
    # Chunks well under every database's bound-parameter limit.
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        sql = "SELECT DISTINCT step FROM metric_points WHERE model_id = ?"
        params: list[Any] = [model_id]
        if name_list:
            for j in range(0, len(name_list), 200):
                names_chunk = name_list[j : j + 200]
                q = sql + f" AND name IN ({', '.join('?' * len(names_chunk))})"
                q += f" AND step IN ({', '.join('?' * len(chunk))})"
                rows = conn.exec_driver_sql(driver_sql(dialect, q), (*params, *names_chunk, *chunk))
                found.update(int(r[0]) for r in rows)
        else:
            q = sql + f" AND step IN ({', '.join('?' * len(chunk))})"
            rows = conn.exec_driver_sql(driver_sql(dialect, q), (*params, *chunk))
            found.update(int(r[0]) for r in rows)
    return found


def read_points(conn: Connection, model_id: str) -> list[tuple[int, str, float | None]]:
    """Every ``(step, name, value)`` of a model, by step then name."""
    mp = metric_points
    query = (
        sa.select(mp.c.step, mp.c.name, mp.c.value)
        .where(mp.c.model_id == model_id)
        .order_by(mp.c.step, mp.c.name)
    )
    return [(int(r.step), str(r.name), r.value) for r in conn.execute(query)]


def read_series(conn: Connection, model_id: str, name: str) -> tuple[list[int], list[float | None]]:
    """One metric of a model as ``(steps, values)``, by step.

    Through the driver's cursor (one index range, no SQLAlchemy row objects).
    """
    sql = "SELECT step, value FROM metric_points WHERE model_id = ? AND name = ? ORDER BY step"
    rows = _fetchall(conn, driver_sql(conn.dialect.name, sql), (model_id, name))
    return [int(r[0]) for r in rows], [r[1] for r in rows]


def _fetchall(conn: Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    """Every row of ``sql`` as the driver's tuples, in ``conn``'s transaction.

    SQLAlchemy's result rows cost a few microseconds each: 0.2 s of a 100k-point read.
    """
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, tuple(params))
        return list(cursor.fetchall())
    finally:
        cursor.close()
