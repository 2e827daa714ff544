"""The durable spool: ordering, replacement, recovery after a crash, bounds and drop counting, threads and
checkpoints."""

from __future__ import annotations

import os
import sqlite3
import statistics
import threading
import time
from pathlib import Path

import pytest

from trainhub.client import spool as spool_module
from trainhub.client.errors import SpoolError
from trainhub.client.spool import Spool


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool.for_model(tmp_path / "spool", "m1")


def test_one_file_per_model_under_the_spool_dir(tmp_path: Path) -> None:
    spool = Spool.for_model(tmp_path / "spool", "abc")
    assert Path(spool.path) == tmp_path / "spool" / "abc.db"
    assert Path(spool.path).exists()


def test_wal_mode(spool: Spool) -> None:
    with spool._locked() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_lease_returns_ready_items_in_id_order_and_marks_them_leased(spool: Spool) -> None:
    ids = [spool.put("event", {"n": i}) for i in range(5)]
    leased = spool.lease(3)
    assert [i.id for i in leased] == ids[:3]
    assert [i.payload for i in leased] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {i.id for i in spool.items("leased")} == set(ids[:3])
    assert [i.id for i in spool.lease(10)] == ids[3:]


def test_ack_deletes_and_frees_bytes(spool: Spool) -> None:
    item_id = spool.put("status", {"status": "done"})
    assert item_id is not None
    spool.lease(1)
    spool.ack([item_id])
    assert spool.items() == []
    assert spool.stats()["bytes"] == 0


def test_nack_returns_to_ready_with_error_and_attempt(spool: Spool) -> None:
    item_id = spool.put("status", {"status": "done"})
    spool.lease(1)
    spool.nack([item_id], "503 busy")
    [item] = spool.items()
    assert (item.state, item.attempts, item.last_error) == ("ready", 1, "503 busy")


def test_permanent_nack_dead_letters_with_the_message(spool: Spool) -> None:
    item_id = spool.put("metrics", {"epoch": 0, "metrics": {}})
    spool.lease(1)
    spool.nack([item_id], "422 validation_error: bad", permanent=True)
    [item] = spool.items()
    assert (item.state, item.last_error) == ("dead", "422 validation_error: bad")
    assert spool.lease(10) == []
    assert spool.pending() == 0


def test_held_items_are_not_leased_until_released(spool: Spool) -> None:
    spool.put("metrics", {"epoch": 0}, key="metrics:0", held=True)
    spool.put("status", {"status": "training"})
    assert [i.category for i in spool.lease(10)] == ["status"]
    assert spool.release("metrics") == 1
    assert [i.payload for i in spool.lease(10)] == [{"epoch": 0}]


def test_metrics_of_the_same_epoch_replace_the_pending_one(spool: Spool) -> None:
    first = spool.put("metrics", {"epoch": 3, "v": 1}, key="metrics:3", held=True)
    second = spool.put("metrics", {"epoch": 3, "v": 2}, key="metrics:3", held=True)
    assert first == second
    assert [i.payload for i in spool.items()] == [{"epoch": 3, "v": 2}]


def test_a_leased_item_is_not_replaced_a_new_one_is_queued(spool: Spool) -> None:
    spool.put("metrics", {"epoch": 3, "v": 1}, key="metrics:3")
    spool.lease(1)  # being sent right now
    spool.put("metrics", {"epoch": 3, "v": 2}, key="metrics:3")
    assert [(i.state, i.payload["v"]) for i in spool.items()] == [("leased", 1), ("ready", 2)]


def test_items_survive_reopen(tmp_path: Path) -> None:
    spool = Spool.for_model(tmp_path, "m")
    spool.put("model", {"name": "x"})
    spool.put("metrics", {"epoch": 0}, key="metrics:0", durable=True)
    spool.close()
    again = Spool.for_model(tmp_path, "m")
    assert [i.category for i in again.items()] == ["model", "metrics"]


def test_leased_and_held_items_become_ready_on_reopen(tmp_path: Path) -> None:
    spool = Spool.for_model(tmp_path, "m")
    spool.put("model", {"name": "x"})
    spool.put("metrics", {"epoch": 0}, held=True)
    spool.lease(1)  # then the process "crashes": no ack, no close
    again = Spool.for_model(tmp_path, "m")
    assert {i.state for i in again.items()} == {"ready"}
    assert [i.category for i in again.lease(10)] == ["model", "metrics"]


def test_survives_a_killed_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import os; from trainhub.client.spool import Spool\n"
        f"s = Spool.for_model({str(tmp_path)!r}, 'm')\n"
        "s.put('metrics', {'epoch': 1}, key='metrics:1', durable=True)\n"
        "s.lease(1)\n"
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    again = Spool.for_model(tmp_path, "m")
    assert [(i.state, i.payload) for i in again.items()] == [("ready", {"epoch": 1})]


def test_full_spool_drops_oldest_events_first_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", max_bytes=300)
    for i in range(10):
        spool.put("event", {"kind": "train", "n": i, "pad": "x" * 20})
    events = [i.payload["n"] for i in spool.items()]
    assert events == sorted(events) and events[-1] == 9  # the newest are kept
    assert spool.stats()["bytes"] <= 300
    assert spool.stats()["dropped"] == {"event": {"spool_full": 10 - len(events)}}


def test_metrics_are_never_dropped_even_when_full(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", max_bytes=100)
    spool.put("event", {"pad": "x" * 50})
    for epoch in range(20):
        assert spool.put("metrics", {"epoch": epoch, "pad": "y" * 30}, key=f"metrics:{epoch}") is not None
    assert [i.payload["epoch"] for i in spool.items() if i.category == "metrics"] == list(range(20))
    assert spool.stats()["dropped"] == {"event": {"spool_full": 1}}


def test_an_event_that_cannot_fit_is_refused_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", max_bytes=50)
    spool.put("metrics", {"epoch": 0, "pad": "y" * 60})
    assert spool.put("event", {"kind": "train"}) is None
    assert spool.stats()["dropped"] == {"event": {"spool_full": 1}}


def test_payload_must_be_json(spool: Spool) -> None:
    with pytest.raises(SpoolError):
        spool.put("metrics", {"v": float("nan")})
    with pytest.raises(SpoolError):
        spool.put("nonsense", {})


def test_concurrent_put_and_lease(spool: Spool) -> None:
    seen: list[int] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set() or spool.pending():
            items = spool.lease(50)
            spool.ack([i.id for i in items])
            seen.extend(i.payload["n"] for i in items)

    worker = threading.Thread(target=consume)
    worker.start()
    for n in range(500):
        spool.put("event", {"n": n})
    done.set()
    worker.join(10)
    assert seen == list(range(500))


def test_put_is_well_under_a_millisecond(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db")
    payload = {"epoch": 1, "metrics": {f"metric/{i}": 0.1 * i for i in range(30)}}
    times = []
    for n in range(300):
        t = time.perf_counter()
        spool.put("metrics", payload, key=f"metrics:{n}")
        times.append(time.perf_counter() - t)
    assert statistics.median(times) < 0.001


def test_closed_spool_raises_spool_error(spool: Spool) -> None:
    spool.close()
    spool.close()  # idempotent
    with pytest.raises(SpoolError):
        spool.put("event", {})


# -- threads, connections and checkpoints -------------------------------------------------------------


def test_training_thread_writes_do_not_wait_for_another_threads_read(spool: Spool) -> None:
    # The old design shared one connection under one lock: a long read on the worker thread (or a
    # checkpoint) held up the training thread's put. Now each thread has its own connection.
    spool.put("event", {"n": 0})
    inside, leave = threading.Event(), threading.Event()

    def long_read() -> None:
        with spool._locked() as conn:
            conn.execute("BEGIN")
            conn.execute("SELECT COUNT(*) FROM items").fetchone()  # holds a read snapshot
            inside.set()
            leave.wait(30)
            conn.execute("COMMIT")

    reader = threading.Thread(target=long_read)
    reader.start()
    try:
        assert inside.wait(10)
        done = threading.Event()

        def epoch_end() -> None:
            spool.put("metrics", {"epoch": 1}, key="metrics:1", held=True, durable=True)
            spool.release("metrics")
            spool.put("checkpoint", {"path": "/w/last.pt"}, key="checkpoint:last")
            done.set()

        threading.Thread(target=epoch_end, daemon=True).start()
        assert done.wait(10), "put() waited for another thread's read transaction"
    finally:
        leave.set()
        reader.join(10)
    assert [i.category for i in spool.items()] == ["event", "metrics", "checkpoint"]


def test_durable_puts_use_a_full_sync_connection(spool: Spool) -> None:
    with spool._locked(durable=True) as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync at every commit
    with spool._locked() as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_commits_never_checkpoint_at_sqlites_default_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "CHECKPOINT_EVERY", 10**9)  # no checkpoint thread
    spool = Spool(tmp_path / "s.db")
    for n in range(1500):  # ~3 WAL pages each: well past SQLite's default of 1,000 pages
        spool.put("event", {"n": n})
    assert Path(f"{spool.path}-wal").stat().st_size > 1000 * 4096  # nobody checkpointed


def test_the_checkpoint_thread_copies_the_wal_and_it_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "CHECKPOINT_EVERY", 50)
    spool = Spool(tmp_path / "s.db")
    ran: list[str] = []
    done = threading.Event()
    real = Spool.checkpoint

    def checkpoint(self: Spool) -> None:
        real(self)
        ran.append(threading.current_thread().name)
        done.set()

    monkeypatch.setattr(Spool, "checkpoint", checkpoint)
    for n in range(50):
        spool.put("event", {"n": n})
    assert done.wait(10)
    assert ran == ["trainhub-spool-checkpoint"]
    spool.put("event", {"n": 50})
    with spool._locked() as conn:
        busy, log_frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and log_frames < 10  # the WAL was started over, not appended to
    spool.close()


def test_ack_and_nack_take_any_number_of_ids(spool: Spool) -> None:
    ids = [spool.put("event", {"n": n}) for n in range(1200)]
    assert len(spool.lease(1200)) == 1200
    spool.nack([i for i in ids[:700] if i is not None], "503")
    spool.ack([i for i in ids[700:] if i is not None] + [10**9])  # an unknown id is ignored
    assert {(i.state, i.attempts) for i in spool.items()} == {("ready", 1)}
    assert spool.pending() == 700
    spool.ack([i.id for i in spool.lease(1000)])
    assert spool.items() == [] and spool.stats()["bytes"] == 0


def test_a_memory_spool_is_one_database_for_all_threads() -> None:
    spool = Spool(":memory:")
    spool.put("status", {"status": "training"})
    leased: list[int] = []
    t = threading.Thread(target=lambda: leased.extend(i.id for i in spool.lease(10)))
    t.start()
    t.join(10)
    assert len(leased) == 1 and spool.items("leased")[0].id == leased[0]


def test_close_closes_every_threads_connection(spool: Spool) -> None:
    conns: list[sqlite3.Connection] = []

    def use() -> None:
        with spool._locked() as conn:
            conns.append(conn)

    t = threading.Thread(target=use)
    t.start()
    t.join(10)
    spool.close()
    with pytest.raises(sqlite3.ProgrammingError):
        conns[0].execute("SELECT 1")
    with pytest.raises(SpoolError):
        spool.pending()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_child_forked_while_the_write_lock_is_held_writes_on_its_own_connection(spool: Spool) -> None:
    spool.put("model", {"name": "x"})
    with spool._write_lock:  # as if the worker thread were writing at the moment of fork()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                spool.put("metrics", {"epoch": 1}, key="metrics:1")
                code = 0
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [i.category for i in spool.items()] == ["model", "metrics"]  # held/leased untouched
