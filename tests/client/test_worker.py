"""The worker against a fake hub (httpx.MockTransport) and a wait that never sleeps."""

from __future__ import annotations

import email.utils
import hashlib
import threading
import time
from pathlib import Path

import httpx
import pytest

from trainhub.client.retry import RetryPolicy
from trainhub.client.spool import Spool
from trainhub.client.transport import Transport
from trainhub.client.worker import Worker
from trainhub.protocol import HEADER_IDEMPOTENCY_KEY, HEADER_SHA256

from .conftest import FakeHub, RecordingWait, fail_times

MODEL = "0123456789abcdef0123"


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool.for_model(tmp_path / "spool", MODEL)


def make_worker(spool: Spool, hub: FakeHub, wait: RecordingWait, **kwargs: object) -> Worker:
    transport = Transport("http://hub.test", "ul_key", transport=hub.transport)
    policy = RetryPolicy(jitter="none", deadline=1e9)
    return Worker(spool, transport, MODEL, policy=policy, wait=wait, **kwargs)  # type: ignore[arg-type]


def test_model_is_delivered_before_the_models_metrics(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait
) -> None:
    spool.put("model", {"name": "run"})
    spool.put("metrics", {"epoch": 0, "metrics": {"loss": 1.0}}, key="metrics:0")
    fake_hub.script.append(fail_times(2, 503, path_part=f"/models/{MODEL}"))
    worker = make_worker(spool, fake_hub, no_sleep)
    assert worker.drain()
    assert [(c.method, c.path) for c in fake_hub.calls] == [
        ("PUT", f"/api/v1/models/{MODEL}"),
        ("PUT", f"/api/v1/models/{MODEL}"),
        ("PUT", f"/api/v1/models/{MODEL}"),
        ("POST", f"/api/v1/models/{MODEL}/metrics"),
    ]
    assert worker.model_ready.is_set()


def test_consecutive_epochs_go_in_one_request(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait
) -> None:
    for epoch in range(5):
        spool.put("metrics", {"epoch": epoch, "metrics": {"loss": 1.0 / (epoch + 1)}}, key=f"metrics:{epoch}")
    assert make_worker(spool, fake_hub, no_sleep).drain()
    [call] = fake_hub.calls
    assert [e["epoch"] for e in call.json["epochs"]] == [0, 1, 2, 3, 4]
    assert call.headers["authorization"] == "Bearer ul_key"
    assert call.headers[HEADER_IDEMPOTENCY_KEY]
    assert spool.items() == []


def test_events_are_batched_to_the_events_endpoint(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait
) -> None:
    for kind in ("train", "val"):
        spool.put("event", {"kind": kind, "install_id": "i"})
    make_worker(spool, fake_hub, no_sleep).drain()
    [call] = fake_hub.calls
    assert call.path == "/api/v1/events"
    assert [e["kind"] for e in call.json["events"]] == ["train", "val"]


def test_429_is_retried_no_sooner_than_retry_after(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait
) -> None:
    spool.put("status", {"status": "done"})
    fake_hub.script.append(fail_times(1, 429, headers={"retry-after": "7"}))
    assert make_worker(spool, fake_hub, no_sleep).drain()
    assert len(fake_hub.calls) == 2
    assert no_sleep.delays == [7.0]


def test_retry_after_as_http_date(spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait) -> None:
    now = 1_700_000_000.0
    spool.put("status", {"status": "done"})
    date = email.utils.formatdate(now + 12, usegmt=True)
    fake_hub.script.append(fail_times(1, 503, headers={"retry-after": date}))
    assert make_worker(spool, fake_hub, no_sleep, wall=lambda: now).drain()
    assert no_sleep.delays == [pytest.approx(12.0)]


def test_5xx_is_retried_with_growing_backoff(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait
) -> None:
    spool.put("status", {"status": "done"})
    fake_hub.script.append(fail_times(4, 500))
    assert make_worker(spool, fake_hub, no_sleep).drain()
    assert no_sleep.delays == [0.5, 1.0, 2.0, 4.0]
    assert spool.items() == []


def test_connection_errors_are_retried(spool: Spool, no_sleep: RecordingWait) -> None:
    failures = [3]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures[0]:
            failures[0] -= 1
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={})

    spool.put("status", {"status": "done"})
    worker = Worker(
        spool,
        Transport("http://hub.test", transport=httpx.MockTransport(handler)),
        MODEL,
        policy=RetryPolicy(jitter="none"),
        wait=no_sleep,
    )
    assert worker.drain()
    assert len(no_sleep.delays) == 3
    assert worker.stats()["retries"] == {"status": 3}


def test_4xx_is_dead_lettered_with_the_servers_message_and_not_retried(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait, caplog: pytest.LogCaptureFixture
) -> None:
    spool.put("status", {"status": "bogus"})
    spool.put("status", {"status": "done"})
    fake_hub.script.append(fail_times(1, 422))
    assert make_worker(spool, fake_hub, no_sleep).drain()
    assert no_sleep.delays == []
    [dead] = spool.items("dead")
    assert dead.payload == {"status": "bogus"}
    assert "failing 422" in (dead.last_error or "")
    assert "failing 422" in caplog.text and caplog.text.count("rejected") == 1
    assert len(fake_hub.calls) == 2  # the next item still went


def test_a_rejected_batch_is_split_to_find_the_bad_epoch(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait
) -> None:
    for epoch in range(3):
        spool.put("metrics", {"epoch": epoch, "metrics": {}}, key=f"metrics:{epoch}")

    def reject_epoch_1(request: httpx.Request) -> httpx.Response | None:
        if b'"epoch":1' in request.content.replace(b" ", b""):
            return httpx.Response(422, json={"error": {"code": "validation_error", "message": "bad epoch"}})
        return None

    fake_hub.script.append(reject_epoch_1)
    make_worker(spool, fake_hub, no_sleep).drain()
    assert [i.payload["epoch"] for i in spool.items("dead")] == [1]
    assert spool.items("ready") == []


def test_401_stops_the_worker_and_keeps_the_items(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait
) -> None:
    spool.put("model", {"name": "run"})
    spool.put("metrics", {"epoch": 0, "metrics": {}})
    fake_hub.script.append(fail_times(99, 401))
    worker = make_worker(spool, fake_hub, no_sleep)
    assert not worker.drain()
    assert worker.auth_failed
    assert len(fake_hub.calls) == 1
    assert {i.state for i in spool.items()} == {"ready"}
    assert not worker.flush(timeout=5)  # returns at once: nothing can be sent


def test_checkpoint_is_streamed_with_length_and_sha256(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 5000  # > one chunk
    weights = tmp_path / "last.pt"
    weights.write_bytes(data)
    spool.put("checkpoint", {"path": str(weights), "kind": "last", "epoch": 4, "is_best": True, "map": 0.5})
    assert make_worker(spool, fake_hub, no_sleep).drain()
    [call] = fake_hub.calls
    assert (call.method, call.path) == ("PUT", f"/api/v1/models/{MODEL}/checkpoints/last")
    assert call.params == {"epoch": "4", "is_best": "true", "map": "0.5"}
    assert call.headers["content-length"] == str(len(data))
    assert call.headers[HEADER_SHA256] == hashlib.sha256(data).hexdigest()
    assert call.body == data


def test_a_missing_checkpoint_file_is_dead(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait, tmp_path: Path
) -> None:
    spool.put("checkpoint", {"path": str(tmp_path / "gone.pt"), "kind": "last", "epoch": 1})
    make_worker(spool, fake_hub, no_sleep).drain()
    assert fake_hub.calls == []
    [dead] = spool.items("dead")
    assert "gone.pt" in (dead.last_error or "")


def test_checksum_mismatch_is_retried_a_few_times(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait, tmp_path: Path
) -> None:
    weights = tmp_path / "last.pt"
    weights.write_bytes(b"abc")
    spool.put("checkpoint", {"path": str(weights), "kind": "last", "epoch": 1})

    def mismatch(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(400, json={"error": {"code": "checksum_mismatch", "message": "changed"}})

    fake_hub.script.append(mismatch)
    make_worker(spool, fake_hub, no_sleep).drain()
    assert len(fake_hub.calls) == 4  # 1 + MAX_CHECKSUM_RETRIES
    assert spool.items()[0].state == "dead"


def test_after_the_deadline_items_stay_and_the_worker_slows_down(
    spool: Spool, fake_hub: FakeHub, no_sleep: RecordingWait, caplog: pytest.LogCaptureFixture
) -> None:
    spool.put("status", {"status": "done"})
    fake_hub.script.append(fail_times(3, 503))
    clock = iter(range(0, 1000, 10))
    transport = Transport("http://hub.test", transport=fake_hub.transport)
    worker = Worker(
        spool,
        transport,
        MODEL,
        policy=RetryPolicy(jitter="none", deadline=15, cap=30),
        wait=no_sleep,
        clock=lambda: float(next(clock)),
    )
    assert worker.drain()
    assert 30.0 in no_sleep.delays
    assert "still trying" in caplog.text


def test_close_interrupts_a_retry_wait_at_once(spool: Spool, fake_hub: FakeHub) -> None:
    spool.put("status", {"status": "done"})
    fake_hub.script.append(fail_times(99, 503, headers={"retry-after": "3600"}))
    transport = Transport("http://hub.test", transport=fake_hub.transport)
    worker = Worker(spool, transport, MODEL, policy=RetryPolicy(deadline=1e9))
    worker.ensure_started()
    deadline = time.monotonic() + 5
    while not fake_hub.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    worker.close(timeout=5)
    assert time.monotonic() - started < 1.0
    assert not worker.running
    assert [i.state for i in spool.items()] == ["ready"]  # kept for the next run


def test_thread_delivers_and_flush_waits_for_it(spool: Spool, fake_hub: FakeHub) -> None:
    transport = Transport("http://hub.test", transport=fake_hub.transport)
    worker = Worker(spool, transport, MODEL)
    spool.put("model", {"name": "x"})
    for epoch in range(3):
        spool.put("metrics", {"epoch": epoch, "metrics": {}}, key=f"metrics:{epoch}")
    assert worker.flush(timeout=10)
    assert spool.pending() == 0
    worker.close()


def test_flush_times_out_while_the_hub_is_down(spool: Spool, fake_hub: FakeHub) -> None:
    fake_hub.script.append(fail_times(10**6, 503))
    transport = Transport("http://hub.test", transport=fake_hub.transport)
    worker = Worker(spool, transport, MODEL, wait=lambda s: threading.Event().wait(0.01))
    spool.put("status", {"status": "done"})
    started = time.monotonic()
    assert not worker.flush(timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2
    worker.close()
