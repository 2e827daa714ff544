"""Background fsync of a spool's write-ahead log: the training thread commits, this thread makes it durable.

Why a thread: an fsync on a shared virtual disk takes 1-15 ms (appending to a file also commits the
file system's journal), and on the training thread it was the whole p99 of an epoch callback. A
commit in SQLite's WAL mode with ``synchronous=NORMAL`` already survives the death of the process,
however it dies (the kernel's page cache holds the written frames); only a power loss or a kernel
crash can take a commit that no fsync has reached yet. So the training thread commits and calls
:meth:`WalSyncer.request`; this thread fsyncs the WAL file, usually within a few milliseconds, and
one fsync covers every commit made before it started (requests made meanwhile are coalesced).

The thread waits :data:`SETTLE_SECONDS` after a request before it syncs: an fsync that overlaps the
training thread's next spool write makes that write wait for the disk (and the waking thread takes
the GIL from it), which put the p99 of an epoch callback back at 1.5-4 ms in the benchmark; a few
milliseconds later the callback has returned and the training loop is computing again.

Syncing the WAL through a descriptor of our own is what SQLite's ``synchronous=FULL`` does at
commit: the WAL's frames carry checksums and a commit marker, so after a power loss SQLite
replays every complete transaction up to the last one on disk and ignores a torn tail. Only the
``-wal`` file is ever opened here, never the database file: SQLite holds POSIX advisory locks on
the database (and ``-shm``) file, and closing *any* descriptor of a file drops every such lock the
process holds on it. SQLite takes none on the ``-wal`` file. When there is no WAL file, the last
connection has checkpointed it into the database (fsyncing the database) and removed it: there is
nothing left to sync.

:meth:`WalSyncer.wait` blocks until a request is on disk (closing the spool, tests); the thread is
started on the first request and is a daemon, so it never keeps a finished process alive.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["SETTLE_SECONDS", "WalSyncer", "fsync_wal"]

#: How long the fsync thread lets the caller's burst of writes end before it syncs (see above).
SETTLE_SECONDS = 0.005

log = logging.getLogger("trainhub")


def fsync_wal(db_path: str) -> None:
    """fsync ``<db_path>-wal`` if it exists (never the database file: see the module docstring)."""
    try:
        fd = os.open(f"{db_path}-wal", os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        # fdatasync: the data and the size, not the timestamps (what SQLite itself uses on Linux).
        getattr(os, "fdatasync", os.fsync)(fd)
    finally:
        os.close(fd)


class WalSyncer:
    """Coalescing fsync requests for one spool file, served by one daemon thread.

    Args:
        db_path: the SQLite database whose WAL is synced.
        sync_file: what syncs it (default :func:`fsync_wal`; tests inject a recorder).
        settle: seconds to wait after a request before syncing (:data:`SETTLE_SECONDS`).
        sleep: how the thread waits them (tests inject a recorder).
    """

    def __init__(
        self,
        db_path: str,
        *,
        sync_file: Callable[[str], None] = fsync_wal,
        settle: float = SETTLE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.db_path = db_path
        self._sync_file = sync_file
        self._settle = settle
        self._sleep = sleep
        self._cond = threading.Condition()
        self._requested = 0  # tickets handed out
        self._synced = 0  # every ticket <= this one is on disk
        self._closing = False
        self._thread: threading.Thread | None = None
        #: fsyncs done and fsyncs that failed (an OSError: the commits stay safe from a crash of the
        #: process, and the next request tries again).
        self.syncs = 0
        self.failures = 0

    def request(self) -> int:
        """Ask for an fsync covering every commit made before this call; return its ticket.

        Never blocks on the disk: the caller only takes a lock held for a few instructions."""
        with self._cond:
            if self._closing:
                return self._requested
            self._requested += 1
            ticket = self._requested
            if self._thread is None or not self._thread.is_alive():
                self._start()
            self._cond.notify_all()
        return ticket

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="trainhub-spool-fsync", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no more threads: sync on the caller's thread rather than never
            self._sync_once(self._requested, retry_wait=False)
            return
        self._thread = thread

    def wait(self, ticket: int | None = None, timeout: float | None = None) -> bool:
        """Wait until ``ticket`` (default: the latest request) is on disk; False on timeout."""
        with self._cond:
            target = self._requested if ticket is None else ticket
            return self._cond.wait_for(lambda: self._synced >= target, timeout)

    @property
    def pending(self) -> bool:
        """Whether a requested fsync has not been done yet."""
        with self._cond:
            return self._synced < self._requested

    def close(self, timeout: float = 10.0) -> bool:
        """Do the pending fsync (waiting up to ``timeout``), then stop the thread; whether all is on disk."""
        done = self.wait(timeout=timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0 if done else 0.0)
        return done

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._requested > self._synced or self._closing)
                if self._requested <= self._synced:  # closing with nothing to do
                    return
                closing = self._closing
            if self._settle > 0 and not closing:
                self._sleep(self._settle)
            with self._cond:
                target = self._requested  # requests made while settling are covered too
            if not self._sync_once(target) and closing:
                return

    def _sync_once(self, target: int, *, retry_wait: bool = True) -> bool:
        """One fsync covering ``target``; whether it worked."""
        try:
            self._sync_file(self.db_path)
        except OSError as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("trainhub: cannot fsync the spool %s: %s", self.db_path, exc)
            if retry_wait:
                with self._cond:
                    # Not advanced: waiters keep waiting for the next request's fsync (or their
                    # timeout). Sleep until something new is requested instead of spinning.
                    self._cond.wait_for(lambda: self._requested > target or self._closing)
            return False
        with self._cond:
            self.syncs += 1
            self._synced = max(self._synced, target)
            self._cond.notify_all()
        return True
