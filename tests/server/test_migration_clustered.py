"""Migration 0009: on SQLite the metric tables become ``WITHOUT ROWID`` and keep their rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from trainhub.server.backends import open_store


def _ddl(conn: sa.Connection, table: str) -> str:
    query = sa.text("SELECT sql FROM sqlite_master WHERE name = :t")
    return str(conn.execute(query, {"t": table}).scalar_one())


def test_points_and_rollups_survive_the_rebuild(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        store.migrate("0008")
        now = datetime.now(UTC).replace(tzinfo=None)
        with store.write() as conn:
            assert "WITHOUT ROWID" not in _ddl(conn, "metric_points")
            conn.execute(sa.text("INSERT INTO projects (name, created_at) VALUES ('p', :n)"), {"n": now})
            conn.execute(
                sa.text(
                    "INSERT INTO models (id, name, project_id, status, config, created_at, updated_at,"
                    " stop_requested) VALUES ('m1', 'run', 1, 'new', '{}', :n, :n, 0)"
                ),
                {"n": now},
            )
            points = [{"s": s, "v": s * 0.5} for s in range(50)]
            conn.execute(sa.text("INSERT INTO metric_points VALUES ('m1', 'loss', :s, :v)"), points)
            conn.execute(
                sa.text("INSERT INTO metric_rollups VALUES ('m1', 'loss', 0, 0, 16, 0, 15, 0, 0.0, 15, 7.5)")
            )
        assert store.migrate() == "0008"
        with store.read() as conn:
            for table in ("metric_points", "metric_rollups"):
                assert "WITHOUT ROWID" in _ddl(conn, table), table
            rows = conn.execute(sa.text("SELECT step, value FROM metric_points ORDER BY step")).all()
            assert [(r.step, r.value) for r in rows] == [(p["s"], p["v"]) for p in points]
            assert conn.execute(sa.text("SELECT n, max_value FROM metric_rollups")).one() == (16, 7.5)
            # The foreign key (and its cascade) came along.
            assert conn.execute(sa.text("PRAGMA foreign_key_list(metric_points)")).first() is not None
        with store.write() as conn:
            conn.execute(sa.text("DELETE FROM models WHERE id = 'm1'"))
        with store.read() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM metric_points")).scalar_one() == 0
    finally:
        store.close()
