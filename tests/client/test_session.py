"""HubSession: the training-thread API spools and returns, never raises, and the data reaches the hub."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import trainhub
from trainhub.client import guard
from trainhub.client.errors import ConfigError
from trainhub.client.nullsession import NullSession
from trainhub.client.retry import RetryPolicy
from trainhub.client.session import HubSession, start_session
from trainhub.client.spool import Spool
from trainhub.client.transport import Transport
from trainhub.protocol import MODEL_ID_RE

from .conftest import FakeHub


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture
def session(fake_hub: FakeHub) -> Iterator[HubSession]:
    s = HubSession(
        "http://hub.test", "ul_key", name="run", epochs=3, task="detect", http_transport=fake_hub.transport
    )
    yield s
    s.close(timeout=1)


def test_model_id_and_url_are_known_at_once() -> None:
    s = HubSession("http://hub.test/", mode="offline")
    assert MODEL_ID_RE.match(s.model_id) and len(s.model_id) == 20
    assert s.model_url == f"http://hub.test/models/{s.model_id}"
    s.close()


def test_an_online_session_builds_its_http_client_on_the_starting_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not on the worker thread during the first epochs, where importing httpx and loading the CA
    bundle took the GIL from the training thread (training-thread p99 2-3 ms in the benchmark)."""
    built_on: list[str] = []
    real_http = Transport._http

    def recording_http(self: Transport) -> Any:
        if self._client is None:
            built_on.append(threading.current_thread().name)
        return real_http(self)

    monkeypatch.setattr(Transport, "_http", recording_http)
    refuse_all = httpx.MockTransport(lambda r: httpx.Response(503))
    s = HubSession("http://hub.test", "ul_key", http_transport=refuse_all)
    assert built_on[:1] == [threading.current_thread().name]
    s.close(timeout=0)


def test_model_url_gives_the_id_and_the_hub_root() -> None:
    s = HubSession(model_url="https://hub.example.com/prefix/models/abc123", mode="offline")
    assert s.model_id == "abc123"
    assert s.settings.url == "https://hub.example.com/prefix"
    assert s.model_url == "https://hub.example.com/prefix/models/abc123"
    s.close()


@pytest.mark.parametrize("bad", ["https://hub/models/a.b", "https://hub/nothing/abc", "https://hub/models/"])
def test_bad_model_url_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        HubSession(model_url=bad, mode="offline")


def test_everything_reaches_the_hub_in_order(session: HubSession, fake_hub: FakeHub, tmp_path: Path) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    session.queue_metrics(0, {"train/loss": 1.5, "metrics/mAP50(B)": float("nan")})
    session.queue_metrics(1, {"train/loss": 1.0})
    session.upload_metrics()
    session.set_final_metrics({"metrics/mAP50(B)": 0.7})
    session.upload_model(2, weights, map=0.7, final=True)
    calls = fake_hub.non_heartbeat()
    base = f"/api/v1/models/{session.model_id}"
    assert [(c.method, c.path) for c in calls] == [
        ("PUT", base),
        ("POST", f"{base}/metrics"),
        ("POST", f"{base}/status"),
        ("PUT", f"{base}/checkpoints/final"),
    ]
    assert calls[0].json == {"name": "run", "config": {}, "epochs": 3, "task": "detect"}
    assert calls[1].json == {
        "epochs": [
            {"epoch": 0, "metrics": {"train/loss": 1.5, "metrics/mAP50(B)": None}},
            {"epoch": 1, "metrics": {"train/loss": 1.0}},
        ]
    }
    assert calls[2].json == {"final_metrics": {"metrics/mAP50(B)": 0.7}}
    assert calls[3].params == {"epoch": "2", "is_best": "false", "map": "0.7"}
    assert session.spool.pending(include_held=True) == 0


def test_queued_metrics_wait_for_upload_metrics(session: HubSession, fake_hub: FakeHub) -> None:
    session.queue_metrics(0, {"loss": 1.0})
    assert json.loads(session.metrics_queue[0]) == {"loss": 1.0}
    assert session.flush(timeout=5) is True  # flush releases held metrics too
    assert any(c.path.endswith("/metrics") for c in fake_hub.calls)


def test_metrics_written_straight_into_metrics_queue_are_sent(session: HubSession, fake_hub: FakeHub) -> None:
    session.metrics_queue[4] = json.dumps({"loss": 0.5, "bad": math.inf})  # the seed's callback does this
    session.upload_metrics()
    assert session.flush(timeout=5)
    [call] = [c for c in fake_hub.calls if c.path.endswith("/metrics")]
    assert call.json == {"epochs": [{"epoch": 4, "metrics": {"loss": 0.5, "bad": None}}]}


def test_config_is_made_json_able() -> None:
    s = HubSession(
        mode="offline",
        config={"data": Path("/d/coco.yaml"), "lr": math.nan, "obj": object(), "imgsz": (640, 640)},
    )
    [model] = s.spool.items()
    assert model.payload["config"]["data"] == "/d/coco.yaml"
    assert model.payload["config"]["lr"] is None
    assert model.payload["config"]["imgsz"] == [640, 640]
    assert isinstance(model.payload["config"]["obj"], str)
    s.close()


def test_training_thread_calls_are_fast_and_never_raise_when_the_hub_is_down(tmp_path: Path) -> None:
    guard.set_reraise(False)  # the production behaviour
    weights = tmp_path / "last.pt"
    weights.write_bytes(b"w" * 1000)
    s = HubSession(
        "http://hub.test",
        http_transport=httpx.MockTransport(refuse),
        settings=None,
        retry_policy=RetryPolicy(deadline=1e9),
    )
    s.settings = s.settings.replace(final_timeout=0.2)
    timings = []
    for epoch in range(20):
        t = time.perf_counter()
        s.queue_metrics(epoch, {"loss": 1.0 / (epoch + 1)})
        if epoch % 5 == 0:
            s.upload_metrics()
            s.upload_model(epoch, weights)
        timings.append(time.perf_counter() - t)
    assert max(timings) < 0.05
    t = time.perf_counter()
    s.upload_model(19, weights, final=True)  # bounded by final_timeout
    assert time.perf_counter() - t < 2
    s.close(timeout=0.1)
    assert Spool(s.spool.path).pending() > 0  # nothing lost: it is all in the spool file


def test_internal_errors_are_swallowed_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    guard.set_reraise(False)
    s = HubSession(mode="offline")
    s.spool.close()  # every spool write now fails
    with caplog.at_level(logging.WARNING, logger="trainhub"):
        s.queue_metrics(0, {"loss": 1.0})
        s.queue_metrics(1, {"loss": 1.0})
        s.send_event("train")
        s.close()
    assert caplog.text.count("internal error in HubSession.queue_metrics") == 1


def test_guard_reraises_in_tests() -> None:
    s = HubSession(mode="offline")
    s.spool.close()
    with pytest.raises(trainhub.TrainhubError):
        s.queue_metrics(0, {"loss": 1.0})


def test_setting_alive_false_stops_heartbeats_promptly(fake_hub: FakeHub) -> None:
    s = HubSession("http://hub.test", http_transport=fake_hub.transport, rate_limits={"heartbeat": 0.05})
    assert s.heartbeat is not None
    deadline = time.monotonic() + 5
    while s.heartbeat.beats < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.alive and s.heartbeat.beats >= 2
    s.alive = False
    assert not s.alive
    time.sleep(0.1)
    beats = len([p for p in fake_hub.paths() if p.endswith("/heartbeat")])
    time.sleep(0.3)
    assert len([p for p in fake_hub.paths() if p.endswith("/heartbeat")]) == beats
    heartbeat = next(c for c in fake_hub.calls if c.path.endswith("/heartbeat"))
    assert heartbeat.json["agent"].startswith("python-")
    s.close()


def test_stopping_heartbeat_does_not_wait_for_the_interval(fake_hub: FakeHub) -> None:
    s = HubSession("http://hub.test", http_transport=fake_hub.transport, rate_limits={"heartbeat": 3600})
    deadline = time.monotonic() + 5
    while s.heartbeat is not None and s.heartbeat.beats < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    t = time.monotonic()
    assert s.heartbeat is not None
    s.heartbeat.stop(timeout=2)
    assert time.monotonic() - t < 0.5
    s.close()


def test_stop_requested_comes_from_the_heartbeat_reply(fake_hub: FakeHub) -> None:
    def stop(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/heartbeat"):
            return httpx.Response(200, json={"agent_id": "a", "status": "training", "stop_requested": True})
        return None

    fake_hub.script.append(stop)
    s = HubSession("http://hub.test", http_transport=fake_hub.transport)
    deadline = time.monotonic() + 5
    while not s.stop_requested and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.stop_requested
    s.close()


def test_seed_fields(session: HubSession) -> None:
    assert session.rate_limits == {"metrics": 3.0, "ckpt": 900.0, "heartbeat": 30.0}
    session.timers = {"metrics": 1.0, "ckpt": 2.0}  # the seed's callback assigns a new dict
    assert session.limiter.timers == {"metrics": 1.0, "ckpt": 2.0}
    assert session.metrics_upload_failed_queue == {}


def test_rate_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINHUB_RATE_LIMIT_METRICS", "10")
    s = HubSession(mode="offline", rate_limits={"ckpt": 60})
    assert s.rate_limits == {"metrics": 10.0, "ckpt": 60, "heartbeat": 30.0}
    s.close()


def test_offline_mode_spools_without_any_thread_or_network(tmp_path: Path) -> None:
    before = threading.active_count()
    s = HubSession("http://hub.test", mode="offline")
    s.queue_metrics(0, {"loss": 1.0})
    s.upload_metrics()
    assert s.worker is None and s.heartbeat is None
    # Only the spool's fsync thread (no network), and it ends with the session.
    assert s.spool._syncer is not None and s.spool._syncer._thread is not None
    assert threading.active_count() == before + 1  # that one is the spool's fsync thread
    assert s.flush() is False
    path = s.spool.path
    s.close()
    assert not s.spool._syncer._thread.is_alive()
    assert Path(path).parent == tmp_path / "spool"
    assert [i.category for i in Spool(path).items()] == ["model", "metrics"]


def test_disabled_mode_gives_a_null_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINHUB_MODE", "disabled")
    s = start_session()
    assert isinstance(s, NullSession)
    s.queue_metrics(0, {"loss": 1.0})
    s.upload_model(0, "nope.pt", final=True)
    assert s.flush() is True
    with pytest.raises(ConfigError):
        HubSession()


def test_start_session_returns_a_null_session_on_bad_config(monkeypatch: pytest.MonkeyPatch) -> None:
    guard.set_reraise(False)
    monkeypatch.setenv("TRAINHUB_URL", "ftp://nope")
    assert isinstance(start_session(), NullSession)


def test_close_reports_what_is_left_and_where(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = HubSession("http://hub.test", http_transport=httpx.MockTransport(refuse))
    s.queue_metrics(0, {"loss": 1.0})
    with caplog.at_level(logging.WARNING, logger="trainhub"):
        t = time.monotonic()
        s.close(timeout=0.2)
        assert time.monotonic() - t < 3
    assert "not sent yet" in caplog.text and s.spool.path in caplog.text
    s.close()  # idempotent


def test_final_upload_warns_when_the_hub_cannot_be_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TRAINHUB_FINAL_TIMEOUT", "0.2")
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"w")
    s = HubSession("http://hub.test", http_transport=httpx.MockTransport(refuse))
    with caplog.at_level(logging.WARNING, logger="trainhub"):
        s.upload_model(1, weights, final=True)
    assert "could not reach the hub" in caplog.text and s.spool.path in caplog.text
    s.close(timeout=0)


def test_a_new_session_for_the_same_model_sends_what_a_dead_one_left(fake_hub: FakeHub) -> None:
    first = HubSession("http://hub.test", mode="offline")
    first.queue_metrics(0, {"loss": 1.0})  # held, then the process "dies" without releasing
    model_id = first.model_id
    second = HubSession("http://hub.test", model_id=model_id, http_transport=fake_hub.transport)
    assert second.flush(timeout=5)
    assert any(c.path.endswith("/metrics") for c in fake_hub.calls)
    second.close()


def test_public_api_is_importable_from_the_package() -> None:
    assert trainhub.HubSession is HubSession
    assert trainhub.__all__ == sorted(trainhub.__all__)
