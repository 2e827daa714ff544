"""Liveness: training while heartbeats arrive, stalled after two missed intervals, crashed after the
server's crash timeout, training again on a late heartbeat, done after a clean finish, and
``alive = False`` stops heartbeats at once."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from delivery_helpers import API, CHILD_SCRIPT, Child, child_env, hub, wait_until

from trainhub import HubSession

if TYPE_CHECKING:
    from conftest import HubServer

INTERVAL = 0.5  # client heartbeat interval: stalled after 2 * 0.5 s without one
CRASH_TIMEOUT = 3.0


def _status(server: HubServer, model_id: str) -> str:
    with hub(server) as c:
        return str(c.get(f"{API}/models/{model_id}").json()["status"])


def _model(server: HubServer, model_id: str) -> dict[str, Any]:
    with hub(server) as c:
        data: dict[str, Any] = c.get(f"{API}/models/{model_id}").json()
        return data


def test_killed_run_becomes_stalled_then_crashed_and_a_late_heartbeat_revives_it(
    tmp_path: Path, hub_server_factory: Callable[..., HubServer]
) -> None:
    server = hub_server_factory(env={"TRAINHUB_CRASH_TIMEOUT": str(CRASH_TIMEOUT)})
    model_id = secrets.token_hex(10)
    env = child_env(tmp_path, server.url, server.api_key, {"TRAINHUB_HEARTBEAT_INTERVAL": str(INTERVAL)})
    child = Child(tmp_path, CHILD_SCRIPT, [model_id, "3", "0", "hang"], env)
    try:
        child.wait_for("HANGING")
        wait_until(lambda: _model(server, model_id).get("last_heartbeat_at") is not None, 10, "a beat")
        first = _model(server, model_id)["last_heartbeat_at"]
        wait_until(lambda: _model(server, model_id)["last_heartbeat_at"] != first, 10, "another beat")
        assert _status(server, model_id) == "training"
        child.kill9()
        killed = time.monotonic()
    finally:
        child.close()

    wait_until(lambda: _status(server, model_id) == "stalled", 2 * INTERVAL + 2, "stalled")
    stalled_after = time.monotonic() - killed
    wait_until(lambda: _status(server, model_id) == "crashed", CRASH_TIMEOUT + 2, "crashed")
    crashed_after = time.monotonic() - killed
    # Not before its time: stalled needs 2 missed intervals (minus the beat's age at the kill).
    assert stalled_after >= 2 * INTERVAL - INTERVAL - 0.1, stalled_after
    assert CRASH_TIMEOUT - INTERVAL - 0.1 <= crashed_after <= CRASH_TIMEOUT + 2, crashed_after

    with hub(server) as c:  # a late heartbeat (say, the run was only frozen) brings it back
        r = c.post(f"{API}/models/{model_id}/heartbeat", json={"agent": "python-test", "interval": 60})
        assert r.status_code == 200 and r.json()["status"] == "training"
    assert _status(server, model_id) == "training"


def test_a_late_upload_revives_a_crashed_model(hub_server_factory: Callable[..., HubServer]) -> None:
    server = hub_server_factory(env={"TRAINHUB_CRASH_TIMEOUT": "1"})
    model_id = secrets.token_hex(10)
    with hub(server) as c:
        assert c.put(f"{API}/models/{model_id}", json={"name": "late"}).status_code == 201
        c.post(f"{API}/models/{model_id}/heartbeat", json={"agent": "python-test", "interval": 0.2})
        wait_until(lambda: _status(server, model_id) == "crashed", 5, "crashed")
        r = c.post(f"{API}/models/{model_id}/metrics", json={"epochs": [{"epoch": 0, "metrics": {"a": 1.0}}]})
        assert r.status_code == 200 and r.json() == {"epochs": 1, "points": 1, "replaced": 0}
        assert _status(server, model_id) == "training"
        again = c.post(
            f"{API}/models/{model_id}/metrics", json={"epochs": [{"epoch": 0, "metrics": {"a": 1.0}}]}
        )
        assert again.json()["replaced"] == 1  # the server tells a re-send apart


def test_clean_finish_is_done_and_stays_done(
    tmp_path: Path, hub_server_factory: Callable[..., HubServer]
) -> None:
    server = hub_server_factory(env={"TRAINHUB_CRASH_TIMEOUT": "1"})
    model_id = secrets.token_hex(10)
    env = child_env(tmp_path, server.url, server.api_key, {"TRAINHUB_HEARTBEAT_INTERVAL": "0.2"})
    child = Child(tmp_path, CHILD_SCRIPT, [model_id, "3", "0", "finish"], env)
    try:
        assert child.result()["flushed"], child.describe()
    finally:
        child.close()
    assert _status(server, model_id) == "done"
    beat = _model(server, model_id)["last_heartbeat_at"]
    time.sleep(1.5)  # longer than the crash timeout: nothing may turn a finished run into "crashed"
    assert _status(server, model_id) == "done"
    assert _model(server, model_id)["last_heartbeat_at"] == beat  # finishing stopped the heartbeats


def test_alive_false_stops_heartbeats_at_once(tmp_path: Path, hub_server: HubServer) -> None:
    session = HubSession(
        hub_server.url, hub_server.api_key, spool_dir=tmp_path / "spool", rate_limits={"heartbeat": 0.1}
    )
    try:
        assert session.heartbeat is not None
        wait_until(lambda: session.heartbeat is not None and session.heartbeat.beats >= 2, 10, "beats")
        session.alive = False
        assert not session.alive
        beats = session.heartbeat.beats
        session.heartbeat.stop(timeout=5)  # joins: a beat already in flight has landed
        last = _model(hub_server, session.model_id)["last_heartbeat_at"]
        time.sleep(0.6)  # six intervals: no beat may arrive
        assert session.heartbeat.beats <= beats + 1  # at most the one that was in flight
        assert _model(hub_server, session.model_id)["last_heartbeat_at"] == last
    finally:
        session.close()
