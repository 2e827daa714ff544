"""Background WAL checkpoints of the SQLite store, so that no request pays for one.

SQLite's automatic checkpoint runs inside whichever commit crosses ``wal_autocheckpoint`` pages
(1,000 by default): that request copies the whole WAL into the database and fsyncs both files
while it holds the write lock, and every other writer waits (the p99 of a one-epoch request was
3-4x its p50). Instead, every :data:`CHECKPOINT_EVERY` write transactions wake this thread, which
runs a ``PASSIVE`` checkpoint on a connection of its own: it copies what is committed while
writers go on appending, and never waits for them.

A passive checkpoint cannot copy the frames committed while it runs, so under steady writes the
WAL is never copied in full and never restarts. The automatic checkpoint stays on as the backstop
at :data:`BACKSTOP_PAGES`: when it fires, almost every frame is already copied, so the commit that
runs it copies the few left and the WAL starts over (at most ~40 MB of WAL on disk).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["BACKSTOP_PAGES", "CHECKPOINT_EVERY", "WalCheckpointer"]

log = logging.getLogger("trainhub.server")

#: Write transactions between two background checkpoints.
CHECKPOINT_EVERY = 100
#: ``wal_autocheckpoint`` of every connection: only reached when the thread cannot keep up.
BACKSTOP_PAGES = 10_000


class WalCheckpointer:
    """Counts a store's write transactions and checkpoints the WAL on its own thread.

    Args:
        engine: the SQLite engine (its pool lends the thread a connection per checkpoint).
        every: write transactions between two checkpoints.
    """

    def __init__(self, engine: Engine, *, every: int = CHECKPOINT_EVERY) -> None:
        self._engine = engine
        self._every = every
        self._cond = threading.Condition()
        self._commits = 0
        self._due = False
        self._closed = False
        self._thread: threading.Thread | None = None
        #: Checkpoints done (tests and logs).
        self.runs = 0

    def committed(self) -> None:
        """Count one write transaction; wake the thread every :data:`CHECKPOINT_EVERY` of them."""
        with self._cond:
            self._commits += 1
            if self._commits < self._every or self._closed:
                return
            self._commits = 0
            self._due = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="trainhub-wal-checkpoint", daemon=True)
                try:
                    self._thread.start()
                except RuntimeError:  # no more threads: the backstop still bounds the WAL
                    self._thread = None
                    return
            self._cond.notify_all()

    def wait_runs(self, runs: int, timeout: float | None = None) -> bool:
        """Wait until at least ``runs`` checkpoints are done (tests); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.runs >= runs, timeout)

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._due or self._closed)
                if self._closed:
                    return
                self._due = False
            try:
                self.checkpoint()
            except (sa.exc.SQLAlchemyError, sqlite3.Error) as exc:  # busy, or closed: next time
                log.debug("trainhub: background WAL checkpoint failed: %s", exc)
            with self._cond:
                self.runs += 1
                self._cond.notify_all()

    def checkpoint(self) -> None:
        """One ``PASSIVE`` checkpoint, outside any transaction (the driver is in autocommit)."""
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                cursor.fetchall()
            finally:
                cursor.close()
        finally:
            raw.close()
