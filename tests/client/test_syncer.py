"""The spool's fsync thread: requests are served off the caller's thread, coalesced, waited for, and
failures neither raise nor count as synced."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from trainhub.client.session import HubSession
from trainhub.client.spool import Spool
from trainhub.client.syncer import WalSyncer, fsync_wal


class Recorder:
    """A ``sync_file`` that records its calls and can be held shut (an fsync that takes a while)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail = False

    def __call__(self, path: str) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        self.calls.append((path, threading.current_thread().name))
        if self.fail:
            raise OSError(5, "Input/output error")


def test_a_request_is_synced_on_the_fsync_thread_not_the_callers() -> None:
    rec = Recorder()
    syncer = WalSyncer("/x/m.db", sync_file=rec)
    ticket = syncer.request()
    assert syncer.wait(ticket, timeout=10)
    assert rec.calls == [("/x/m.db", "trainhub-spool-fsync")]
    assert syncer.syncs == 1 and not syncer.pending
    syncer.close()


def test_requests_made_during_an_fsync_are_coalesced_into_one_more() -> None:
    rec = Recorder()
    rec.gate.clear()
    syncer = WalSyncer("/x/m.db", sync_file=rec)
    first = syncer.request()
    assert rec.entered.wait(10)  # the first fsync is under way (held shut)
    later = [syncer.request() for _ in range(5)]
    assert not syncer.wait(first, timeout=0)  # request() returned without waiting for the disk
    rec.gate.set()
    assert syncer.wait(later[-1], timeout=10)
    assert len(rec.calls) == 2  # one for the first, one covering the five made meanwhile
    syncer.close()


def test_the_thread_lets_the_callers_writes_settle_and_covers_requests_made_meanwhile() -> None:
    rec = Recorder()
    tickets: list[int] = []
    slept: list[float] = []

    def settle(seconds: float) -> None:  # the caller goes on writing while the thread waits
        slept.append(seconds)
        if len(tickets) < 4:
            tickets.extend(syncer.request() for _ in range(3))

    syncer = WalSyncer("/x/m.db", sync_file=rec, settle=0.005, sleep=settle)
    tickets.append(syncer.request())
    assert syncer.wait(tickets[-1], timeout=10)
    assert slept == [0.005]
    assert len(tickets) == 4 and len(rec.calls) == 1  # one fsync for all four
    syncer.close()


def test_a_failed_fsync_is_not_counted_as_synced_and_the_next_request_retries() -> None:
    rec = Recorder()
    rec.fail = True
    syncer = WalSyncer("/x/m.db", sync_file=rec)
    ticket = syncer.request()
    assert rec.entered.wait(10)
    assert not syncer.wait(ticket, timeout=0.2)
    assert syncer.pending
    rec.fail = False
    retry = syncer.request()
    assert syncer.wait(retry, timeout=10)
    assert syncer.wait(ticket, timeout=0)  # one fsync covers the earlier commits too
    assert syncer.failures >= 1 and syncer.syncs == 1
    syncer.close()


def test_close_does_the_pending_fsync_then_ends_the_thread() -> None:
    rec = Recorder()
    rec.gate.clear()
    syncer = WalSyncer("/x/m.db", sync_file=rec)
    syncer.request()
    assert rec.entered.wait(10)
    opener = threading.Timer(0.05, rec.gate.set)
    opener.start()
    assert syncer.close(timeout=10)
    assert len(rec.calls) == 1
    assert syncer._thread is not None and not syncer._thread.is_alive()
    before = len(rec.calls)
    syncer.request()  # after close: nothing more is started
    assert len(rec.calls) == before


def test_fsync_wal_syncs_the_wal_file_and_never_opens_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing a descriptor of the database file would drop SQLite's POSIX locks on it."""
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: str, flags: int, *args: int) -> int:
        opened.append(str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", recording_open)
    db = tmp_path / "m.db"
    db.write_bytes(b"x")
    fsync_wal(str(db))  # no WAL file: nothing to sync, and the database is left alone
    (tmp_path / "m.db-wal").write_bytes(b"y")
    fsync_wal(str(db))
    assert opened == [f"{db}-wal", f"{db}-wal"]


def test_the_fsync_thread_keeps_sqlites_locks_on_the_database(tmp_path: Path) -> None:
    """A second process must still see this process's read lock after the fsync thread ran."""
    import subprocess
    import sys

    spool = Spool.for_model(tmp_path, "m")
    spool.put("metrics", {"epoch": 0}, key="metrics:0", held=True)
    with spool._locked() as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM items").fetchone()  # holds a read snapshot (WAL lock)
        assert spool.wait_synced(spool.sync_soon(), timeout=10)
        # Another process cannot checkpoint past our snapshot, and cannot take the exclusive lock
        # of a database someone has open: both would be possible had our locks been dropped.
        code = (
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], timeout=0)\n"
            "try:\n"
            "    c.execute('PRAGMA locking_mode=EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE')\n"
            "    print('exclusive')\n"
            "except sqlite3.OperationalError as e:\n"
            "    print('busy', e)\n"
        )
        out = subprocess.run([sys.executable, "-c", code, spool.path], capture_output=True, text=True)
        conn.execute("COMMIT")
    assert out.stdout.startswith("busy"), out.stdout + out.stderr
    spool.close()


def test_a_spool_put_then_sync_soon_is_on_disk_after_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fdatasync
    monkeypatch.setattr(
        os, "fdatasync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd))
    )
    spool = Spool.for_model(tmp_path, "m")
    spool.put("metrics", {"epoch": 0}, key="metrics:0", held=True)
    ticket = spool.sync_soon()
    assert spool.wait_synced(ticket, timeout=10)
    assert synced and synced[-1] == f"{spool.path}-wal"
    spool.close()


def test_memory_spool_has_nothing_to_sync() -> None:
    spool = Spool(":memory:")
    assert spool.sync_soon() == 0
    assert spool.wait_synced(timeout=0)
    spool.close()


def test_the_training_thread_never_fsyncs_an_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """queue_metrics + upload_metrics commit on the caller's thread; the fsync happens on the fsync
    thread, and every epoch's metrics are covered by one."""
    fsyncs: list[str] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync

    def on_fdatasync(fd: int) -> None:
        fsyncs.append(threading.current_thread().name)
        real_fdatasync(fd)

    def on_fsync(fd: int) -> None:
        fsyncs.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fdatasync", on_fdatasync)
    monkeypatch.setattr(os, "fsync", on_fsync)
    s = HubSession("http://hub.test", mode="offline")
    caller = threading.current_thread().name
    # The session's setup (the model's description) may fsync on this thread; the epochs may not.
    fsyncs.clear()
    full_syncs_before = _sqlite_full_syncs(s.spool)
    for epoch in range(20):
        s.queue_metrics(epoch, {"loss": 1.0 / (epoch + 1)})
        s.upload_metrics()
    assert caller not in fsyncs
    assert _sqlite_full_syncs(s.spool) == full_syncs_before  # no synchronous=FULL commit either
    assert s.spool.wait_synced(timeout=10)
    assert fsyncs and set(fsyncs) == {"trainhub-spool-fsync"}
    path = s.spool.path
    s.close()
    assert sorted(i.payload["epoch"] for i in Spool(path).items() if i.category == "metrics") == list(
        range(20)
    )


def _sqlite_full_syncs(spool: Spool) -> int:
    """Rows changed through the calling thread's fsyncing (``synchronous=FULL``) connection: SQLite
    fsyncs in C, which the patched ``os`` functions do not see."""
    conn = getattr(spool._local, "durable", None)
    return -1 if conn is None else int(conn.total_changes)
