"""The durable on-disk queue between the training thread and the worker thread.

One SQLite file per model, ``<spool_dir>/<model_id>.db``, in WAL mode. Item life cycle::

    put(held=True) -> held --release(category)--> ready --lease(n)--> leased --ack--> (deleted)
    put()          -> ready                                           leased --nack--> ready
                                                                      leased --nack(permanent)--> dead

* ``put()`` commits before it returns. With ``synchronous=NORMAL`` a commit survives a crash of the
  process but not of the machine; ``put(durable=True)`` (used once per epoch for metrics) and
  :meth:`Spool.sync` also fsync the WAL, which makes every earlier commit durable too.
* On open, ``leased`` items (a process died while sending them) and ``held`` items (metrics the dead
  process never released) become ``ready``: nothing is lost and the next sender delivers them.
* An item with an idempotency ``key`` replaces a pending (held or ready) item with the same key: a
  re-queued epoch's metrics or a newer ``last`` checkpoint replace the unsent one.
* Bounded: when payloads exceed ``max_bytes`` (default 256 MiB), usage events are deleted oldest first
  and new events are refused; metrics and the other (small) categories are always admitted. Every drop
  is counted per (category, reason) in :meth:`Spool.stats`.
* ``dead`` items are kept with their error message for inspection and a later re-send.

Thread-safe: one connection shared under a lock (the training thread puts while the worker leases).
Fork-safe: a forked child never touches the parent's connection; it opens its own on first use.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trainhub.client.errors import SpoolError

__all__ = ["CATEGORIES", "DEFAULT_MAX_BYTES", "Item", "Spool"]

#: Item categories, one per kind of request the worker makes.
CATEGORIES: Final = ("model", "metrics", "checkpoint", "status", "event")
#: Default bound of one spool's payload bytes.
DEFAULT_MAX_BYTES: Final = 256 * 1024**2
MEMORY: Final = ":memory:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    category TEXT NOT NULL,
    key TEXT,
    payload TEXT NOT NULL,
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_state ON items (state, id);
CREATE INDEX IF NOT EXISTS items_key ON items (key);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Item:
    """One spooled request (``payload`` is the decoded JSON)."""

    id: int
    category: str
    key: str | None
    payload: Any
    state: str
    attempts: int
    last_error: str | None
    created_at: float


class Spool:
    """A durable queue of items in one SQLite file (see the module docstring).

    Args:
        path: the database file (created with its directory), or ``":memory:"`` for a non-durable spool.
        max_bytes: bound of the stored payload bytes (see the module docstring).
        clock: wall clock for ``created_at``.

    Raises:
        SpoolError: the file cannot be created or opened.
    """

    def __init__(
        self, path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = str(path)
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        self._dropped: dict[tuple[str, str], int] = {}
        self._conn = self._connect(recover=True)
        self._bytes = int(self._conn.execute("SELECT COALESCE(SUM(size), 0) FROM items").fetchone()[0])

    @classmethod
    def for_model(cls, spool_dir: str | Path, model_id: str, **kwargs: Any) -> Spool:
        """The spool of one model: ``<spool_dir>/<model_id>.db``."""
        return cls(Path(spool_dir) / f"{model_id}.db", **kwargs)

    def _connect(self, *, recover: bool) -> sqlite3.Connection:
        try:
            if self.path != MEMORY:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False: the connection is shared by two threads, always under self._lock.
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            if recover:
                conn.execute("UPDATE items SET state='ready' WHERE state IN ('leased', 'held')")
        except (sqlite3.Error, OSError) as exc:
            raise SpoolError(f"cannot open the spool {self.path}: {exc}") from exc
        return conn

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        if os.getpid() != self._pid:
            # A forked child: the inherited lock may be held by a thread that does not exist here, and
            # SQLite connections must not cross fork(). Start over without touching the parent's.
            self._lock = threading.Lock()
            self._pid = os.getpid()
            self._conn = self._connect(recover=False)
        with self._lock:
            if self._closed:
                raise SpoolError(f"the spool {self.path} is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise SpoolError(f"spool {self.path}: {exc}") from exc

    # -- training thread ---------------------------------------------------------------------------

    def put(
        self,
        category: str,
        payload: Any,
        *,
        key: str | None = None,
        held: bool = False,
        durable: bool = False,
    ) -> int | None:
        """Add an item and commit; return its id, or None when it was dropped (a full spool, events only).

        Args:
            category: one of :data:`CATEGORIES`.
            payload: JSON-able request description.
            key: idempotency key; replaces a pending (held/ready) item with the same key.
            held: keep it out of :meth:`lease` until :meth:`release` of its category.
            durable: fsync the WAL at this commit (makes all earlier commits durable too).

        Raises:
            SpoolError: an unknown category, a payload that is not JSON-able, or a database error.
        """
        if category not in CATEGORIES:
            raise SpoolError(f"unknown spool category {category!r}")
        try:
            text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise SpoolError(f"payload of a {category} item is not JSON: {exc}") from exc
        size = len(text)
        state = "held" if held else "ready"
        with self._locked() as conn:
            if durable:
                conn.execute("PRAGMA synchronous=FULL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                if key is not None:
                    old = conn.execute(
                        "SELECT id, size FROM items WHERE key=? AND state IN ('held','ready')", (key,)
                    ).fetchone()
                    if old is not None:
                        conn.execute(
                            "UPDATE items SET payload=?, size=?, state=? WHERE id=?",
                            (text, size, state, old[0]),
                        )
                        conn.execute("COMMIT")
                        self._bytes += size - int(old[1])
                        return int(old[0])
                if self._bytes + size > self.max_bytes and not self._make_room(conn, category, size):
                    conn.execute("COMMIT")
                    self._count_drop(category, "spool_full")
                    return None
                cur = conn.execute(
                    "INSERT INTO items (category, key, payload, size, state, created_at) "
                    "VALUES (?,?,?,?,?,?)",
                    (category, key, text, size, state, self._clock()),
                )
                conn.execute("COMMIT")
                self._bytes += size
                return int(cur.lastrowid or 0)
            finally:
                if durable:
                    conn.execute("PRAGMA synchronous=NORMAL")

    def _make_room(self, conn: sqlite3.Connection, category: str, size: int) -> bool:
        """Delete the oldest unsent events until ``size`` more bytes fit; whether the new item goes in."""
        while self._bytes + size > self.max_bytes:
            row = conn.execute(
                "SELECT id, size FROM items WHERE category='event' AND state != 'leased' ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                break
            conn.execute("DELETE FROM items WHERE id=?", (row[0],))
            self._bytes -= int(row[1])
            self._count_drop("event", "spool_full")
        # Only events are ever refused: metrics, checkpoints (a path), model and status items are small
        # and losing them would lose the run's record, so they may overshoot the bound.
        return self._bytes + size <= self.max_bytes or category != "event"

    def _count_drop(self, category: str, reason: str) -> None:
        self._dropped[(category, reason)] = self._dropped.get((category, reason), 0) + 1

    def release(self, category: str) -> int:
        """Make every held item of ``category`` ready; return how many."""
        with self._locked() as conn:
            return conn.execute(
                "UPDATE items SET state='ready' WHERE state='held' AND category=?", (category,)
            ).rowcount

    def sync(self) -> None:
        """Make every committed item durable (fsync) now."""
        with self._locked() as conn:
            if self.path != MEMORY:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- worker thread -----------------------------------------------------------------------------

    def lease(self, n: int) -> list[Item]:
        """Up to ``n`` ready items, oldest first, now marked leased."""
        with self._locked() as conn:
            rows = conn.execute(
                "UPDATE items SET state='leased' WHERE id IN "
                "(SELECT id FROM items WHERE state='ready' ORDER BY id LIMIT ?) "
                "RETURNING id, category, key, payload, state, attempts, last_error, created_at",
                (n,),
            ).fetchall()
        items = [Item(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7]) for r in rows]
        return sorted(items, key=lambda item: item.id)  # RETURNING does not promise an order

    def ack(self, ids: Iterable[int]) -> None:
        """Delete delivered items."""
        with self._locked() as conn:
            for item_id in ids:
                row = conn.execute("DELETE FROM items WHERE id=? RETURNING size", (item_id,)).fetchone()
                if row is not None:
                    self._bytes -= int(row[0])

    def nack(self, ids: Iterable[int], error: str, *, permanent: bool = False) -> None:
        """A failed delivery: back to ready (counting the attempt), or to dead when ``permanent``."""
        state = "dead" if permanent else "ready"
        with self._locked() as conn:
            conn.executemany(
                "UPDATE items SET state=?, attempts=attempts+1, last_error=? WHERE id=?",
                [(state, error, item_id) for item_id in ids],
            )

    def record_attempt(self, ids: Iterable[int], error: str) -> None:
        """Count a failed attempt of leased items the worker keeps retrying."""
        with self._locked() as conn:
            conn.executemany(
                "UPDATE items SET attempts=attempts+1, last_error=? WHERE id=?",
                [(error, item_id) for item_id in ids],
            )

    def requeue(self, ids: Iterable[int]) -> None:
        """Leased items that were not attempted (the worker is stopping) go back to ready."""
        with self._locked() as conn:
            conn.executemany(
                "UPDATE items SET state='ready' WHERE id=? AND state='leased'", [(i,) for i in ids]
            )

    # -- inspection --------------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, int]]:
        """``{state: {category: n}}`` of the stored items."""
        out: dict[str, dict[str, int]] = {}
        with self._locked() as conn:
            for state, category, n in conn.execute(
                "SELECT state, category, COUNT(*) FROM items GROUP BY state, category"
            ):
                out.setdefault(state, {})[category] = n
        return out

    def pending(self, *, include_held: bool = False) -> int:
        """How many items still have to be sent (ready or leased, and held when asked)."""
        states = ("ready", "leased", "held") if include_held else ("ready", "leased")
        with self._locked() as conn:
            marks = ",".join("?" * len(states))
            row = conn.execute(f"SELECT COUNT(*) FROM items WHERE state IN ({marks})", states).fetchone()
        return int(row[0])

    def items(self, state: str | None = None) -> list[Item]:
        """Every item (of one state), oldest first; for inspection and tests."""
        query = "SELECT id, category, key, payload, state, attempts, last_error, created_at FROM items"
        with self._locked() as conn:
            if state is None:
                rows = conn.execute(query + " ORDER BY id").fetchall()
            else:
                rows = conn.execute(query + " WHERE state=? ORDER BY id", (state,)).fetchall()
        return [Item(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    def stats(self) -> dict[str, Any]:
        """``{"path", "bytes", "max_bytes", "items": {state: {category: n}},
        "dropped": {category: {reason: n}}}``."""
        dropped: dict[str, dict[str, int]] = {}
        for (category, reason), n in sorted(self._dropped.items()):
            dropped.setdefault(category, {})[reason] = n
        return {
            "path": self.path,
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "items": self.counts(),
            "dropped": dropped,
        }

    def get_meta(self, name: str) -> str | None:
        """A value stored with :meth:`set_meta`."""
        with self._locked() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        """Store a small value (the model id, the hub URL) so a later ``sync`` knows where to send."""
        with self._locked() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def close(self) -> None:
        """Close the database (idempotent); later calls raise :class:`SpoolError`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if os.getpid() == self._pid:
                self._conn.close()
