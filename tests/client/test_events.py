"""Usage events: opt-outs, the exact fields sent, rate limits, and their way through the spool."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest

from trainhub.client.events import EventRecorder, events_enabled, install_id
from trainhub.client.session import HubSession

from .conftest import FakeHub


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, True),
        ({"TRAINHUB_EVENTS": "0"}, False),
        ({"TRAINHUB_EVENTS": "false"}, False),
        ({"DO_NOT_TRACK": "1"}, False),
        ({"DO_NOT_TRACK": "1", "TRAINHUB_EVENTS": "1"}, False),
        ({"CI": "true"}, False),
        ({"CI": "true", "TRAINHUB_EVENTS": "1"}, True),
        ({"PYTEST_CURRENT_TEST": "t"}, False),
    ],
)
def test_opt_outs(env: dict[str, str], enabled: bool) -> None:
    with mock.patch.dict(sys.modules):
        del sys.modules["pytest"]  # pretend not to run under pytest for this check
        assert events_enabled(env) is enabled


def test_off_by_default_under_pytest() -> None:
    assert events_enabled({}) is False


def test_event_has_only_the_documented_fields(tmp_path: Path) -> None:
    event = EventRecorder(True, id_dir=tmp_path).make("train", task="detect", mode="train")
    assert event is not None
    assert set(event) == {"kind", "id", "install_id", "task", "mode", "versions", "ts"}
    assert event["kind"] == "train" and event["task"] == "detect"
    assert set(event["versions"]) <= {"python", "trainhub", "ultralytics"}


def test_no_paths_or_free_text_leak_through_task_or_mode(tmp_path: Path) -> None:
    event = EventRecorder(True, id_dir=tmp_path).make("train", task="/home/alice/data.yaml", mode="a b")
    assert event is not None
    assert event["task"] is None and event["mode"] is None


def test_disabled_recorder_makes_nothing_and_writes_no_file(tmp_path: Path) -> None:
    assert EventRecorder(False, id_dir=tmp_path).make("train") is None
    assert not (tmp_path / "config" / "trainhub" / "install_id").exists()


def test_rate_limited_per_kind(tmp_path: Path) -> None:
    now = [0.0]
    recorder = EventRecorder(True, id_dir=tmp_path, clock=lambda: now[0], interval=60)
    assert recorder.make("train") is not None
    assert recorder.make("train") is None
    assert recorder.make("val") is not None
    now[0] = 61
    assert recorder.make("train") is not None
    assert recorder.dropped == {"rate_limited": 1}


def test_unknown_kinds_are_dropped(tmp_path: Path) -> None:
    recorder = EventRecorder(True, id_dir=tmp_path)
    assert recorder.make("telemetry") is None
    assert recorder.dropped == {"unknown_kind": 1}


def test_install_id_is_random_and_stable(tmp_path: Path) -> None:
    first = install_id()
    assert len(first) == 32 and first == install_id()
    assert (tmp_path / "config" / "trainhub" / "install_id").read_text().strip() == first


def test_events_are_sent_only_when_enabled(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    s = HubSession("http://hub.test", http_transport=fake_hub.transport)  # under pytest: off
    s.send_event("train", task="detect")
    assert s.flush(timeout=5)
    assert "/api/v1/events" not in fake_hub.paths()
    s.close()

    monkeypatch.setenv("TRAINHUB_EVENTS", "1")
    s = HubSession("http://hub.test", http_transport=fake_hub.transport)
    s.send_event("train", task="detect", mode="train")
    assert s.flush(timeout=5)
    [call] = [c for c in fake_hub.calls if c.path == "/api/v1/events"]
    assert [e["kind"] for e in call.json["events"]] == ["train"]
    s.close()
