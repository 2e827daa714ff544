"""SQLite writers of one process queue on the store's lock (none ever meets SQLite's busy handler),
and the WAL is checkpointed by the store's own thread."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event

from trainhub.server.store.checkpoint import BACKSTOP_PAGES, CHECKPOINT_EVERY
from trainhub.server.store.engine import Store, sqlite_engine


def test_concurrent_writers_never_see_a_locked_database(tmp_path: Path) -> None:
    engine = sqlite_engine(f"sqlite:///{tmp_path / 'hub.db'}")

    @event.listens_for(engine, "connect")
    def _no_busy_wait(dbapi_conn: Any, _record: Any) -> None:
        # No busy handler at all: a writer that met the lock held would fail at once
        # ("database is locked") instead of polling until the other commits.
        dbapi_conn.execute("PRAGMA busy_timeout=0")

    store = Store(engine)
    with store.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (thread INTEGER, n INTEGER)")
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(i: int) -> None:
        start.wait()
        try:
            for n in range(150):
                with store.write() as conn:
                    conn.exec_driver_sql("INSERT INTO t VALUES (?, ?)", (i, n))
                    conn.exec_driver_sql("SELECT count(*) FROM t").fetchone()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 600
    store.close()


def test_a_nested_write_on_the_same_thread_does_not_deadlock_on_the_gate(tmp_path: Path) -> None:
    store = Store(sqlite_engine(f"sqlite:///{tmp_path / 'hub.db'}"))
    with store.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    # The gate is re-entrant; SQLite itself then answers the inner BEGIN IMMEDIATE (busy), as before.
    assert store._write_gate is not None
    with store._write_gate, store.write() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    store.close()


def _rows_in_the_database_file(path: Path) -> int:
    """Rows of ``t`` in the main database file alone: ``immutable=1`` makes SQLite ignore the WAL."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        conn.close()


def test_the_wal_is_checkpointed_by_the_stores_thread_not_by_a_request(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    store = Store(sqlite_engine(f"sqlite:///{path}"))
    checkpointer = store._checkpointer
    assert checkpointer is not None
    with store.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        # No write transaction crosses SQLite's own threshold before ours fires.
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == BACKSTOP_PAGES
    for n in range(CHECKPOINT_EVERY - 2):
        with store.write() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (?)", (n,))
    assert checkpointer.runs == 0
    with store.read() as conn:  # everything is committed, in the WAL only so far
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == CHECKPOINT_EVERY - 2
    with store.write() as conn:  # the 100th write transaction wakes the thread
        conn.exec_driver_sql("INSERT INTO t VALUES (-1)")
    assert checkpointer.wait_runs(1, timeout=30)
    assert _rows_in_the_database_file(path) == CHECKPOINT_EVERY - 1
    store.close()
    assert checkpointer._thread is not None and not checkpointer._thread.is_alive()


def test_an_in_memory_store_has_no_checkpoint_thread() -> None:
    store = Store(sqlite_engine("sqlite://"))
    assert store._checkpointer is None
    store.close()
