"""SQL of chart data: min/max rollups of metric series, kept exact on every write.

Why rollups: a chart draws at most ~1,500 points per series, but a series may hold a million, and
SQLite needs ~0.4 s to scan a million rows however the query is written (measured: a bare
``count(*)`` on the index alone takes 0.1 s). So every series also has, per *level* ``L``, one
row per step bucket of width ``16 * 4**L`` (:func:`level_width`) with the bucket's point count,
first and last step, and the step and value of its smallest and largest non-null value. A chart
read takes the finest level with at most a few thousand buckets: a few thousand rows, not a million.

Maintenance (why this order): :func:`refresh_rollups` runs in the writer's transaction right after
the raw points are upserted. Level-0 buckets touched by the batch are recomputed from the raw
points (at most 16 rows each), then each level's touched buckets from their four children.
Recomputing, rather than merging in the new values, keeps the summaries exact when a re-sent epoch
replaces a value that was a bucket's min or max.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.dialects import upsert
from trainhub.server.store.tables import metric_points, metric_rollups

__all__ = [
    "LEVELS",
    "Bucket",
    "add_points",
    "catalog",
    "driver_sql",
    "has_points",
    "level_width",
    "merge",
    "pg_unnest",
    "read_level",
    "read_raw",
    "read_raw_range",
    "read_tail",
    "rebuild_rollups",
    "refresh_rollups",
]

#: Number of levels; the top one has buckets of 16 * 4**9 = 4,194,304 steps.
LEVELS = 10
_BASE_WIDTH = 16
_FANOUT = 4
#: Names per ``IN (...)`` list: well under every database's bound-parameter limit.
_NAMES_PER_QUERY = 200


def level_width(level: int) -> int:
    """Steps per bucket at ``level``."""
    return int(_BASE_WIDTH * _FANOUT**level)


class Bucket(NamedTuple):
    """The summary of one step bucket of one series (``min_*``/``max_*`` None if all values are null)."""

    bucket: int
    n: int
    first_step: int
    last_step: int
    min_step: int | None
    min_value: float | None
    max_step: int | None
    max_value: float | None


def merge(bucket: int, parts: Iterable[Bucket]) -> Bucket | None:
    """Summary of the union of ``parts`` (in any order), labelled ``bucket``; None if there are none.

    Ties keep the earliest step, so a summary does not depend on the level it was built from.
    """
    n = 0
    first = last = 0
    min_step: int | None = None
    min_value: float | None = None
    max_step: int | None = None
    max_value: float | None = None
    for p in parts:
        if n == 0:
            first, last = p.first_step, p.last_step
        else:
            first, last = min(first, p.first_step), max(last, p.last_step)
        n += p.n
        if (
            p.min_value is not None
            and p.min_step is not None
            and (
                min_value is None
                or min_step is None
                or p.min_value < min_value
                or (p.min_value == min_value and p.min_step < min_step)
            )
        ):
            min_step, min_value = p.min_step, p.min_value
        if (
            p.max_value is not None
            and p.max_step is not None
            and (
                max_value is None
                or max_step is None
                or p.max_value > max_value
                or (p.max_value == max_value and p.max_step < max_step)
            )
        ):
            max_step, max_value = p.max_step, p.max_value
    if n == 0:
        return None
    return Bucket(bucket, n, first, last, min_step, min_value, max_step, max_value)


def _summarize(bucket: int, points: Sequence[tuple[int, float | None]]) -> Bucket:
    """The summary of distinct ``(step, value)`` points (as :func:`merge` of their :func:`_point`)."""
    steps = [s for s, _ in points]
    valued = [(v, s) for s, v in points if v is not None]
    if valued:
        min_value, min_step = min(valued)  # ties: the earliest step
        max_neg = max((v, -s) for v, s in valued)
        max_value, max_step = max_neg[0], -max_neg[1]
        return Bucket(bucket, len(steps), min(steps), max(steps), min_step, min_value, max_step, max_value)
    return Bucket(bucket, len(steps), min(steps), max(steps), None, None, None, None)


def _point(step: int, value: float | None) -> Bucket:
    return Bucket(step, 1, step, step, step if value is not None else None, value, step, value)


def _runs(buckets: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Contiguous ``(lo, hi)`` runs of sorted distinct bucket numbers (one range query per run)."""
    lo = hi = None
    for b in sorted(set(buckets)):
        if hi is not None and b == hi + 1:
            hi = b
            continue
        if lo is not None and hi is not None:
            yield lo, hi
        lo = hi = b
    if lo is not None and hi is not None:
        yield lo, hi


def _chunks(names: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(names), _NAMES_PER_QUERY):
        yield list(names[i : i + _NAMES_PER_QUERY])


def _write(
    conn: Connection, dialect: str, model_id: str, level: int, rows: Mapping[tuple[str, int], Bucket]
) -> None:
    if not rows:
        return
    stmt = upsert(dialect, metric_rollups)
    stats = ("n", "first_step", "last_step", "min_step", "min_value", "max_step", "max_value")
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_id", "name", "level", "bucket"], set_={k: stmt.excluded[k] for k in stats}
    )
    conn.execute(
        stmt,
        [
            {"model_id": model_id, "name": name, "level": level, **b._asdict()}
            for (name, _), b in rows.items()
        ],
    )


def _level0(conn: Connection, model_id: str, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], Bucket]:
    width = level_width(0)
    names = sorted({name for name, _ in wanted})
    parts: dict[tuple[str, int], list[Bucket]] = defaultdict(list)
    mp = metric_points
    for lo, hi in _runs(b for _, b in wanted):
        for chunk in _chunks(names):
            query = sa.select(mp.c.name, mp.c.step, mp.c.value).where(
                mp.c.model_id == model_id,
                mp.c.name.in_(chunk),
                mp.c.step.between(lo * width, (hi + 1) * width - 1),
            )
            for name, step, value in conn.execute(query):
                key = (str(name), int(step) // width)
                if key in wanted:
                    parts[key].append(_point(int(step), value))
    out: dict[tuple[str, int], Bucket] = {}
    for key, pts in parts.items():
        merged = merge(key[1], pts)
        if merged is not None:
            out[key] = merged
    return out


def _children(
    conn: Connection, model_id: str, level: int, wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], Bucket]:
    """Level ``level`` buckets ``wanted`` (name, bucket), merged from their children at ``level - 1``."""
    names = sorted({name for name, _ in wanted})
    parts: dict[tuple[str, int], list[Bucket]] = defaultdict(list)
    r = metric_rollups
    for lo, hi in _runs(b for _, b in wanted):
        for chunk in _chunks(names):
            query = sa.select(r.c.name, *_BUCKET_COLUMNS).where(
                r.c.model_id == model_id,
                r.c.level == level - 1,
                r.c.name.in_(chunk),
                r.c.bucket.between(lo * _FANOUT, hi * _FANOUT + _FANOUT - 1),
            )
            for row in conn.execute(query):
                key = (str(row[0]), int(row[1]) // _FANOUT)
                if key in wanted:
                    parts[key].append(_bucket(row[1:]))
    out: dict[tuple[str, int], Bucket] = {}
    for key, pts in parts.items():
        merged = merge(key[1], pts)
        if merged is not None:
            out[key] = merged
    return out


_BUCKET_COLUMNS = (
    metric_rollups.c.bucket,
    metric_rollups.c.n,
    metric_rollups.c.first_step,
    metric_rollups.c.last_step,
    metric_rollups.c.min_step,
    metric_rollups.c.min_value,
    metric_rollups.c.max_step,
    metric_rollups.c.max_value,
)


def _bucket(row: Sequence[Any]) -> Bucket:
    b, n, first, last, min_step, min_value, max_step, max_value = row
    return Bucket(
        int(b),
        int(n),
        int(first),
        int(last),
        None if min_step is None else int(min_step),
        min_value,
        None if max_step is None else int(max_step),
        max_value,
    )


def _delete(conn: Connection, model_id: str, level: int, keys: Iterable[tuple[str, int]]) -> None:
    params = [{"m": model_id, "n": name, "l": level, "b": b} for name, b in keys]
    if not params:
        return
    r = metric_rollups
    stmt = sa.delete(r).where(
        r.c.model_id == sa.bindparam("m"),
        r.c.name == sa.bindparam("n"),
        r.c.level == sa.bindparam("l"),
        r.c.bucket == sa.bindparam("b"),
    )
    conn.execute(stmt, params)


def refresh_rollups(conn: Connection, dialect: str, model_id: str, points: Iterable[tuple[str, int]]) -> None:
    """Recompute every rollup bucket that covers one of ``points`` (``(name, step)`` just written or
    deleted: whoever deletes metric points must call this with them too)."""
    wanted = {(name, int(step) // level_width(0)) for name, step in points}
    for level in range(LEVELS):
        if not wanted:
            return
        rows = _level0(conn, model_id, wanted) if level == 0 else _children(conn, model_id, level, wanted)
        _write(conn, dialect, model_id, level, rows)
        _delete(conn, model_id, level, wanted - rows.keys())  # buckets whose points were all deleted
        wanted = {(name, b // _FANOUT) for name, b in wanted}


def add_points(
    conn: Connection,
    dialect: str,
    model_id: str,
    points: Mapping[tuple[str, int], float | None],
    replaced: Collection[tuple[str, int]] = (),
) -> None:
    """Fold ``points`` (``(name, step) -> value``, just upserted) into every rollup level.

    The write path's fast version of :func:`refresh_rollups`, for points that were not stored
    before: per level, the batch's points are summarized per bucket here and merged into the stored
    summaries by the upsert itself (``n + excluded.n``, the smaller min, ...): one executemany for
    every level, no SELECT. That is exact because a new point only adds to a bucket. ``replaced``
    (``(name, step)`` that already had a stored value, see :func:`trainhub.server.store.metrics.
    upsert_points`) may have removed a bucket's min or max: their buckets, and every ancestor of
    one, are recomputed by :func:`refresh_rollups` instead.
    """
    if not points:
        return
    if not replaced and len({name for name, _ in points}) == len(points):
        rows = _single_point_rows(model_id, points)  # one epoch: one point per series
    else:
        rows = _merged_rows(model_id, points, replaced)
    if rows:
        if dialect == "postgresql":
            pg_unnest(conn, _merge_rollup_sql(dialect), _ROLLUP_PG_TYPES, rows)
        else:
            conn.exec_driver_sql(_merge_rollup_sql(dialect), rows)
    if replaced:
        # After the merged rows are written: the recompute reads them as the clean children.
        refresh_rollups(conn, dialect, model_id, list(replaced))


def _single_point_rows(
    model_id: str, points: Mapping[tuple[str, int], float | None]
) -> list[tuple[Any, ...]]:
    """:func:`_merged_rows` when each series has one new point (what one epoch sends): that point's
    summary at every level, only the bucket number changes (the hot path: 150 rows per epoch)."""
    rows: list[tuple[Any, ...]] = []
    for (name, step), value in points.items():
        valued = step if value is not None else None
        bucket = step // _BASE_WIDTH
        for level in range(LEVELS):
            rows.append((model_id, name, level, bucket, 1, step, step, valued, value, valued, value))
            bucket //= _FANOUT
    return rows


def _merged_rows(
    model_id: str, points: Mapping[tuple[str, int], float | None], replaced: Collection[tuple[str, int]]
) -> list[tuple[Any, ...]]:
    """The rows merging ``points`` into every level, except the buckets of ``replaced`` points."""
    grouped: dict[tuple[str, int], list[tuple[int, float | None]]] = defaultdict(list)
    for (name, step), value in points.items():
        grouped[(name, step // _BASE_WIDTH)].append((step, value))
    dirty = {(name, step // _BASE_WIDTH) for name, step in replaced}
    level_news: dict[tuple[str, int], list[Bucket]] = {
        key: [_summarize(key[1], pts)] for key, pts in grouped.items()
    }
    rows: list[tuple[Any, ...]] = []
    for level in range(LEVELS):
        parents: dict[tuple[str, int], list[Bucket]] = defaultdict(list)
        for key, news in level_news.items():
            if key in dirty:
                continue  # refresh_rollups recomputes it below
            new_part = news[0] if len(news) == 1 else merge(key[1], news)
            if new_part is None:
                continue
            rows.append((model_id, key[0], level, *new_part))
            # The parent gains exactly these new points: pass them up, labelled with its bucket.
            parent = key[1] // _FANOUT
            # Not _replace(): it is ~4x slower, and a batch of many epochs makes hundreds of these.
            parents[(key[0], parent)].append(Bucket(parent, *new_part[1:]))
        dirty = {(name, b // _FANOUT) for name, b in dirty}
        level_news = parents
    return rows


def _merge_rollup_sql(dialect: str) -> str:
    """The upsert that merges a summary of new points into a stored one (or inserts it).

    In ``DO UPDATE SET`` every column of ``metric_rollups`` is the stored row's old value. Ties of
    min/max keep the earliest step, as :func:`merge` does.
    """
    least, greatest = ("LEAST", "GREATEST") if dialect == "postgresql" else ("min", "max")
    t = "metric_rollups"
    new_min = (
        f"excluded.min_value IS NOT NULL AND ({t}.min_value IS NULL OR excluded.min_value < {t}.min_value"
        f" OR (excluded.min_value = {t}.min_value AND excluded.min_step < {t}.min_step))"
    )
    new_max = (
        f"excluded.max_value IS NOT NULL AND ({t}.max_value IS NULL OR excluded.max_value > {t}.max_value"
        f" OR (excluded.max_value = {t}.max_value AND excluded.max_step < {t}.max_step))"
    )
    # PostgreSQL: the whole batch in one statement (see pg_unnest); SQLite: an executemany.
    values = (
        "SELECT * FROM unnest(" + ", ".join(f"?::{ty}[]" for ty in _ROLLUP_PG_TYPES) + ")"
        if dialect == "postgresql"
        else "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    sql = (
        f"INSERT INTO {t} (model_id, name, level, bucket, n, first_step, last_step,"
        f" min_step, min_value, max_step, max_value) {values}"
        " ON CONFLICT (model_id, name, level, bucket) DO UPDATE SET"
        f" n = {t}.n + excluded.n,"
        f" first_step = {least}({t}.first_step, excluded.first_step),"
        f" last_step = {greatest}({t}.last_step, excluded.last_step),"
        f" min_step = CASE WHEN {new_min} THEN excluded.min_step ELSE {t}.min_step END,"
        f" min_value = CASE WHEN {new_min} THEN excluded.min_value ELSE {t}.min_value END,"
        f" max_step = CASE WHEN {new_max} THEN excluded.max_step ELSE {t}.max_step END,"
        f" max_value = CASE WHEN {new_max} THEN excluded.max_value ELSE {t}.max_value END"
    )
    return driver_sql(dialect, sql)


#: Column types of a metric_rollups row, in _merge_rollup_sql's order.
_ROLLUP_PG_TYPES = (
    *("text", "text", "int", "bigint", "bigint", "bigint", "bigint"),
    *("bigint", "float8", "bigint", "float8"),
)


def pg_unnest(conn: Connection, sql: str, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """Run ``sql`` (written with one ``unnest`` placeholder per column) once for all ``rows``.

    Why: psycopg's executemany is a round trip per row (pipelined, still ~20 ms for 1,000 rows);
    one ``INSERT .. SELECT * FROM unnest(arrays)`` sends the batch as one array per column.
    ``rows`` must not repeat a conflict key (one statement cannot update a row twice).
    Returns the rows of a ``RETURNING`` clause, if any.
    """
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in types]
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, columns)
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        cursor.close()


def driver_sql(dialect: str, sql: str) -> str:
    """``sql`` written with ``?`` placeholders, in the driver's own paramstyle (``%s`` for psycopg)."""
    if dialect == "postgresql":
        return sql.replace("%", "%%").replace("?", "%s")
    return sql


def rebuild_rollups(conn: Connection, dialect: str, model_id: str) -> None:
    """Roll up every series of a model from its raw points (for series stored before rollups existed)."""
    mp = metric_points
    query = sa.select(mp.c.name, mp.c.step).where(mp.c.model_id == model_id)
    batch: list[tuple[str, int]] = []
    for name, step in conn.execute(query):
        batch.append((str(name), int(step)))
        if len(batch) >= 50_000:
            refresh_rollups(conn, dialect, model_id, batch)
            batch = []
    refresh_rollups(conn, dialect, model_id, batch)


def catalog(conn: Connection, model_id: str) -> dict[str, Bucket]:
    """Per series of a model: its whole-series summary (from the top level: a row or two per name)."""
    r = metric_rollups
    query = sa.select(r.c.name, *_BUCKET_COLUMNS).where(r.c.model_id == model_id, r.c.level == LEVELS - 1)
    parts: dict[str, list[Bucket]] = defaultdict(list)
    for row in conn.execute(query):
        parts[str(row[0])].append(_bucket(row[1:]))
    out: dict[str, Bucket] = {}
    for name, pts in sorted(parts.items()):
        merged = merge(0, pts)
        if merged is not None:
            out[name] = merged
    return out


def has_points(conn: Connection, model_id: str) -> bool:
    """Whether a model has any raw metric point."""
    mp = metric_points
    return conn.execute(sa.select(mp.c.step).where(mp.c.model_id == model_id).limit(1)).first() is not None


def read_level(conn: Connection, model_id: str, name: str, level: int) -> list[Bucket]:
    """A series' buckets at one level, by bucket."""
    r = metric_rollups
    query = (
        sa.select(*_BUCKET_COLUMNS)
        .where(r.c.model_id == model_id, r.c.name == name, r.c.level == level)
        .order_by(r.c.bucket)
    )
    return [_bucket(row) for row in conn.execute(query)]


def read_raw(conn: Connection, model_id: str, name: str) -> list[tuple[int, float | None]]:
    """A series' raw ``(step, value)`` points, by step."""
    mp = metric_points
    query = (
        sa.select(mp.c.step, mp.c.value)
        .where(mp.c.model_id == model_id, mp.c.name == name)
        .order_by(mp.c.step)
    )
    return [(int(s), v) for s, v in conn.execute(query)]


def read_raw_range(
    conn: Connection, model_id: str, name: str, lo: int, hi: int
) -> list[tuple[int, float | None]]:
    """A series' raw ``(step, value)`` points with ``lo <= step <= hi``, by step."""
    mp = metric_points
    query = (
        sa.select(mp.c.step, mp.c.value)
        .where(mp.c.model_id == model_id, mp.c.name == name, mp.c.step.between(lo, hi))
        .order_by(mp.c.step)
    )
    return [(int(s), v) for s, v in conn.execute(query)]


def read_tail(
    conn: Connection, model_id: str, names: Sequence[str], min_step: int
) -> list[tuple[int, str, float | None]]:
    """``(step, name, value)`` of the named series from ``min_step`` on, by step then name.

    One index range per name, so the last epochs of a million-point run cost what they cost in a
    short run.
    """
    mp = metric_points
    out: list[tuple[int, str, float | None]] = []
    for name in names:
        query = sa.select(mp.c.step, mp.c.value).where(
            mp.c.model_id == model_id, mp.c.name == name, mp.c.step >= min_step
        )
        out.extend((int(s), name, v) for s, v in conn.execute(query))
    out.sort(key=lambda p: (p[0], p[1]))
    return out
