"""The durable on-disk queue between the training thread and the worker thread.

One SQLite file per model, ``<spool_dir>/<model_id>.db``, in WAL mode. Item life cycle::

    put(held=True) -> held --release(category)--> ready --lease(n)--> leased --ack--> (deleted)
    put()          -> ready                                           leased --nack--> ready
                                                                      leased --nack(permanent)--> dead

* ``put()`` commits before it returns. With ``synchronous=NORMAL`` a commit survives a crash of the
  process but not of the machine; ``put(durable=True)`` and :meth:`Spool.sync` also fsync the WAL on
  the calling thread, which makes every earlier commit durable too. :meth:`Spool.sync_soon` (once per
  epoch, after the metrics) asks the spool's fsync thread to do it instead
  (:mod:`trainhub.client.syncer`): the training thread never waits for the disk.
* On open, ``leased`` items (a process died while sending them) and ``held`` items (metrics the dead
  process never released) become ``ready``: nothing is lost and the next sender delivers them.
* An item with an idempotency ``key`` replaces a pending (held or ready) item with the same key: a
  re-queued epoch's metrics or a newer ``last`` checkpoint replace the unsent one.
* Bounded: when payloads exceed ``max_bytes`` (default 256 MiB), usage events are deleted oldest first
  and new events are refused; metrics and the other (small) categories are always admitted. Every drop
  is counted per (category, reason) in :meth:`Spool.stats`.
* ``dead`` items are kept with their error message for inspection and a later re-send.

Threads: each thread uses its own connections (opened on first use, closed by :meth:`Spool.close`), so
a reader or a checkpoint on another thread never holds up a put() on the training thread (WAL lets readers
and one writer run at once). Writes are serialized by a Python lock held only for the write itself (one
or two statements): waiting on it wakes the waiter at once, where SQLite's busy
handler sleeps 1 ms, then 2, 5... The ``":memory:"`` spool (the fallback when no file can be opened) has
one connection shared by all threads under that lock: an in-memory database is private to its
connection, and it does no I/O.

Checkpoints: SQLite's automatic checkpoint runs inside whichever commit crosses its threshold, which may
be the training thread's. Instead, every :data:`CHECKPOINT_EVERY` write transactions wake the spool's own
checkpoint thread (not the worker's job: it may be stuck in a slow request for seconds, or not exist in
offline mode). ``wal_autocheckpoint`` stays on only as a backstop (:data:`BACKSTOP_PAGES`).

Fork-safe: a forked child never touches the parent's connections; it opens its own on first use.

Ownership: the process that writes a spool holds an :class:`OwnerLock` (``flock`` on
``<spool>.lock``), which the OS releases when the process dies however it dies (``kill -9``, OOM).
``trainhub sync`` takes the same lock first and skips spools that a live process still owns: opening
one would make the live worker's leased items ready again.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trainhub.client.errors import SpoolError
from trainhub.client.syncer import WalSyncer

__all__ = ["CATEGORIES", "DEFAULT_MAX_BYTES", "Item", "OwnerLock", "Spool"]

#: Item categories, one per kind of request the worker makes.
CATEGORIES: Final = ("model", "metrics", "checkpoint", "status", "event")
#: Default bound of one spool's payload bytes.
DEFAULT_MAX_BYTES: Final = 256 * 1024**2
MEMORY: Final = ":memory:"
#: Write transactions between two checkpoints (~3 WAL pages each: about SQLite's default of 1,000 pages).
CHECKPOINT_EVERY: Final = 300
#: ``wal_autocheckpoint`` of every connection, far above what the checkpoint thread lets the WAL reach.
BACKSTOP_PAGES: Final = 10_000

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

# Statements on a list of ids take it as one JSON array: one statement (one transaction) for any count.
_IDS = "id IN (SELECT value FROM json_each(?))"


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


class _Connection(sqlite3.Connection):
    """A connection of one thread (``":memory:"``: the only one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Only ever contended by :meth:`Spool.close`, which must not close a connection in the middle
        #: of another thread's statement.
        self.lock = threading.Lock()


class Spool:
    """A durable queue of items in one SQLite file (see the module docstring).

    Args:
        path: the database file (created with its directory), or ``":memory:"`` for a non-durable spool.
        max_bytes: bound of the stored payload bytes (see the module docstring).
        clock: wall clock for ``created_at``.
        recover: make leased and held items ready (the default: the opener is the new sender). False
            only to inspect a spool another process may be using (``trainhub sync --status``).

    Raises:
        SpoolError: the file cannot be created or opened.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
        recover: bool = True,
    ) -> None:
        self.path = str(path)
        self._recover = recover
        self.max_bytes = max_bytes
        self._clock = clock
        self._closed = False
        self._dropped: dict[tuple[str, str], int] = {}
        self._reset()
        first = self._thread_conn(recover=True)
        self._bytes = int(first.execute("SELECT COALESCE(SUM(size), 0) FROM items").fetchone()[0])

    def _reset(self) -> None:
        # At open, and in a forked child: the inherited locks may be held by threads that do not exist
        # there, and SQLite connections must not cross fork(); the parent's are left alone.
        self._pid = os.getpid()
        self._write_lock = threading.Lock()
        self._conns_lock = threading.Lock()
        self._conns: list[_Connection] = []
        self._local = threading.local()
        self._shared: _Connection | None = None  # the one connection of a ":memory:" spool
        self._commits = 0  # write transactions since the last checkpoint (under _write_lock)
        self._checkpoint_due = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._syncer = WalSyncer(self.path) if self.path != MEMORY else None

    @staticmethod
    def model_path(spool_dir: str | Path, model_id: str) -> Path:
        """Where the spool of one model lives: ``<spool_dir>/<model_id>.db``."""
        return Path(spool_dir) / f"{model_id}.db"

    @classmethod
    def for_model(cls, spool_dir: str | Path, model_id: str, **kwargs: Any) -> Spool:
        """The spool of one model: ``<spool_dir>/<model_id>.db``."""
        return cls(cls.model_path(spool_dir, model_id), **kwargs)

    def _connect(self, *, recover: bool = False, durable: bool = False) -> _Connection:
        try:
            if self.path != MEMORY:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False only so that close() can close every thread's connection; each
            # one is otherwise used by its own thread (or, for ":memory:", under the write lock).
            conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30, factory=_Connection
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # A durable connection fsyncs the WAL at every commit; the others only at checkpoints.
            conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            if recover:  # the first connection of this process
                conn.executescript(_SCHEMA)
                if self._recover:
                    conn.execute("UPDATE items SET state='ready' WHERE state IN ('leased', 'held')")
        except (sqlite3.Error, OSError) as exc:
            raise SpoolError(f"cannot open the spool {self.path}: {exc}") from exc
        return conn

    def _thread_conn(self, *, recover: bool = False, durable: bool = False) -> _Connection:
        """The calling thread's connection, opened on its first use (in this process).

        A thread has a second, ``durable`` connection for the commits that must fsync (once per epoch on
        the training thread): switching one connection with ``PRAGMA synchronous`` would cost two more
        statements per epoch, and every statement lets another thread take the GIL.
        """
        if os.getpid() != self._pid:
            self._reset()
        if self._closed:
            raise SpoolError(f"the spool {self.path} is closed")
        if self.path == MEMORY:  # nothing to fsync
            with self._conns_lock:
                if self._shared is None:
                    self._shared = self._connect(recover=True)
                    self._conns.append(self._shared)
                return self._shared
        name = "durable" if durable else "conn"
        conn: _Connection | None = getattr(self._local, name, None)
        if conn is None:
            conn = self._connect(recover=recover, durable=durable)
            with self._conns_lock:
                if self._closed:
                    conn.close()
                    raise SpoolError(f"the spool {self.path} is closed")
                self._conns.append(conn)
            setattr(self._local, name, conn)
        return conn

    @contextmanager
    def _locked(self, *, write: bool = False, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """The calling thread's connection (``durable``: the one whose commits fsync the WAL). Every
        write passes ``write``, which takes the write lock."""
        conn = self._thread_conn(durable=durable)
        # ":memory:": one connection for all threads, so reads serialize on the write lock too.
        with self._write_lock if write or conn is self._shared else nullcontext(), conn.lock:
            if self._closed:
                raise SpoolError(f"the spool {self.path} is closed")
            try:
                yield conn
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise SpoolError(f"spool {self.path}: {exc}") from exc
            if write:
                self._commits += 1
                if self._commits >= CHECKPOINT_EVERY and self.path != MEMORY:
                    self._request_checkpoint()

    def _request_checkpoint(self) -> None:
        """Wake the checkpoint thread (started on first use in this process); under the write lock."""
        self._commits = 0
        if self._checkpointer is None or not self._checkpointer.is_alive():
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="trainhub-spool-checkpoint", daemon=True
            )
            try:
                self._checkpointer.start()
            except RuntimeError:  # no more threads: the backstop autocheckpoint still bounds the WAL
                return
        self._checkpoint_due.set()

    def _checkpoint_loop(self) -> None:
        due = self._checkpoint_due  # this process's: a forked child makes its own and its own thread
        while not self._closed:
            due.wait()
            due.clear()
            try:
                self.checkpoint()
            except SpoolError:  # closed meanwhile
                return

    # -- training thread ---------------------------------------------------------------------------

    def put(
        self,
        category: str,
        payload: Any,
        *,
        key: str | None = None,
        held: bool = False,
        durable: bool = False,
        replace: bool = True,
    ) -> int | None:
        """Add an item and commit; return its id, or None when it was dropped (a full spool, events only).

        Args:
            category: one of :data:`CATEGORIES`.
            payload: JSON-able request description.
            key: idempotency key; replaces a pending (held/ready) item with the same key.
            held: keep it out of :meth:`lease` until :meth:`release` of its category.
            durable: fsync the WAL at this commit (makes all earlier commits durable too).
            replace: when False, a pending item with the same key is kept as it is (its id is
                returned): the first description wins, e.g. the model item of the process that
                created the run over that of a later process recovering it.

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
        # No BEGIN/COMMIT: each statement commits by itself (the last one with the fsync when durable),
        # and the write lock keeps the other writers of this process out between them. Fewer statements
        # mean fewer chances for another thread to take the GIL while this one waits in SQLite.
        with self._locked(write=True, durable=durable) as conn:
            if key is not None:
                old = conn.execute(
                    "SELECT id, size FROM items WHERE key=? AND state IN ('held','ready')", (key,)
                ).fetchone()
                if old is not None and not replace:
                    return int(old[0])
                if old is not None:
                    # The state again: another process (a forked child's worker) may have leased it.
                    replaced = conn.execute(
                        "UPDATE items SET payload=?, size=?, state=? "
                        "WHERE id=? AND state IN ('held','ready')",
                        (text, size, state, old[0]),
                    ).rowcount
                    if replaced:
                        self._bytes += size - int(old[1])
                        return int(old[0])
            full = self._bytes + size > self.max_bytes
            if full:  # rare: delete old events in one transaction with the insert
                conn.execute("BEGIN IMMEDIATE")
                if not self._make_room(conn, category, size):
                    conn.execute("COMMIT")
                    self._count_drop(category, "spool_full")
                    return None
            cur = conn.execute(
                "INSERT INTO items (category, key, payload, size, state, created_at) VALUES (?,?,?,?,?,?)",
                (category, key, text, size, state, self._clock()),
            )
            if full:
                conn.execute("COMMIT")
            self._bytes += size
            return int(cur.lastrowid or 0)

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
        with self._locked(write=True) as conn:
            return conn.execute(
                "UPDATE items SET state='ready' WHERE state='held' AND category=?", (category,)
            ).rowcount

    def sync_soon(self) -> int:
        """Have every item committed so far fsynced by the spool's fsync thread; return at once.

        Returns a ticket for :meth:`wait_synced` (0 for a ``":memory:"`` spool: nothing to sync)."""
        if os.getpid() != self._pid:
            self._reset()
        return self._syncer.request() if self._syncer is not None else 0

    def wait_synced(self, ticket: int | None = None, timeout: float | None = None) -> bool:
        """Wait until :meth:`sync_soon`'s ``ticket`` (default: the latest) is on disk; False on timeout."""
        return self._syncer.wait(ticket, timeout) if self._syncer is not None else True

    def sync(self) -> None:
        """Make every committed item durable (fsync) now."""
        with self._locked() as conn:
            if self.path != MEMORY:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def checkpoint(self) -> None:
        """Copy the WAL into the database, so that the next write starts the WAL over (overwriting it).

        Runs on the checkpoint thread (see the module docstring); callable from any thread.
        """
        if self.path == MEMORY:
            return
        # The bulk, concurrently with the writers: PASSIVE neither waits for them nor blocks them.
        with self._locked() as conn:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        # Then the few frames committed meanwhile, writers held off: only a WAL copied in full is
        # started over by the next write. Without this, a writer that never pauses long enough would
        # grow the WAL forever, and an fsync that grows a file costs about twice one that overwrites.
        with self._write_lock, self._locked() as conn:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    # -- worker thread -----------------------------------------------------------------------------

    def lease(self, n: int) -> list[Item]:
        """Up to ``n`` ready items, oldest first, now marked leased."""
        with self._locked(write=True) as conn:
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
        with self._locked(write=True) as conn:
            rows = conn.execute(
                f"DELETE FROM items WHERE {_IDS} RETURNING size", (_json_ids(ids),)
            ).fetchall()
            self._bytes -= sum(int(r[0]) for r in rows)

    def nack(self, ids: Iterable[int], error: str, *, permanent: bool = False) -> None:
        """A failed delivery: back to ready (counting the attempt), or to dead when ``permanent``."""
        state = "dead" if permanent else "ready"
        with self._locked(write=True) as conn:
            conn.execute(
                f"UPDATE items SET state=?, attempts=attempts+1, last_error=? WHERE {_IDS}",
                (state, error, _json_ids(ids)),
            )

    def record_attempt(self, ids: Iterable[int], error: str) -> None:
        """Count a failed attempt of leased items the worker keeps retrying."""
        with self._locked(write=True) as conn:
            conn.execute(
                f"UPDATE items SET attempts=attempts+1, last_error=? WHERE {_IDS}", (error, _json_ids(ids))
            )

    def retry_dead(self) -> int:
        """Make every dead item ready again (after the cause was fixed); return how many."""
        with self._locked(write=True) as conn:
            return conn.execute("UPDATE items SET state='ready' WHERE state='dead'").rowcount

    def update_payload(self, item_id: int, payload: Any) -> None:
        """Replace the payload of a stored item (a checkpoint's upload progress: the worker keeps the
        upload id and acknowledged parts here, so a restart resumes the upload). Committed at once."""
        try:
            text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise SpoolError(f"payload of item {item_id} is not JSON: {exc}") from exc
        with self._locked(write=True) as conn:  # the write lock keeps other writers out between the two
            row = conn.execute("SELECT size FROM items WHERE id=?", (item_id,)).fetchone()
            if row is not None:
                conn.execute("UPDATE items SET payload=?, size=? WHERE id=?", (text, len(text), item_id))
                self._bytes += len(text) - int(row[0])

    def requeue(self, ids: Iterable[int]) -> None:
        """Leased items that were not attempted (the worker is stopping) go back to ready."""
        with self._locked(write=True) as conn:
            conn.execute(f"UPDATE items SET state='ready' WHERE {_IDS} AND state='leased'", (_json_ids(ids),))

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
        with self._locked(write=True) as conn:
            conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def close(self) -> None:
        """Close the database (idempotent); later calls raise :class:`SpoolError`."""
        if os.getpid() != self._pid:
            self._reset()  # a forked child: the parent's connections are not ours to close
        if self._syncer is not None and not self._closed:
            self._syncer.close()  # the last epoch's fsync, before the connections go
        with self._write_lock, self._conns_lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._conns:
                with conn.lock:  # not in the middle of another thread's read
                    conn.close()
            self._conns.clear()
            self._shared = None
        self._checkpoint_due.set()  # let the checkpoint thread see _closed and end


class OwnerLock:
    """An exclusive advisory lock on ``<spool>.lock`` held by the process writing the spool.

    Released by :meth:`release` or by the OS when the process ends (even by ``kill -9``). Where
    ``fcntl`` is missing (Windows) every acquire succeeds: ``sync`` then relies on the hub dropping
    replays.
    """

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, spool_path: str | Path) -> OwnerLock | None:
        """The lock, or None when another live process holds it (or it cannot be made)."""
        if str(spool_path) == MEMORY:
            return cls(None)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return cls(None)
        path = Path(f"{spool_path}.lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return cls(fd)

    def release(self) -> None:
        """Release the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor releases the flock


def _json_ids(ids: Iterable[int]) -> str:
    return json.dumps([int(i) for i in ids])
