"""Nothing lost: kill -9 of a training process, then a second process or `trainhub sync` delivers
every epoch exactly once; an offline run synced later equals an online run."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from delivery_helpers import (
    CHILD_SCRIPT,
    PASS,
    RECOVER_SCRIPT,
    Action,
    Child,
    FaultProxy,
    assert_epochs_exactly_once,
    child_env,
    events_total,
    run_cli,
    server_state,
    wait_until,
)

if TYPE_CHECKING:
    from conftest import HubServer

N = 6


@pytest.fixture
def lossy_proxy(hub_server: HubServer) -> Iterator[FaultProxy]:
    """Passes everything on, but loses the server's reply to the first event request (503 instead)
    and never answers the first metrics request: the server stored them, the client does not know."""
    seen: set[str] = set()

    def rule(method: str, path: str, n: int) -> Action:
        for suffix, action in (("/events", Action("lose_reply", 503)), ("/metrics", Action("hang"))):
            if path.endswith(suffix) and suffix not in seen:
                seen.add(suffix)
                return action
        return PASS

    proxy = FaultProxy(hub_server.url, rule)
    yield proxy
    proxy.close()


def _killed_run(tmp_path: Path, hub_server: HubServer, proxy: FaultProxy) -> str:
    """A child that trains N epochs through the lossy proxy, then is killed with SIGKILL."""
    model_id = secrets.token_hex(10)
    child = Child(
        tmp_path,
        CHILD_SCRIPT,
        [model_id, str(N), "0.01", "hang"],
        child_env(tmp_path, proxy.url, hub_server.api_key),
    )
    try:
        child.wait_for("HANGING")  # every epoch's callback returned: each is durable in the spool
        # Killed while its worker waits for the reply to a metrics batch the server has stored.
        wait_until(lambda: any(s.path.endswith("/metrics") for s in proxy.requests()), 30, "metrics")
        child.kill9()
    finally:
        child.close()
    return model_id


def test_kill9_then_a_second_process_delivers_every_epoch_exactly_once(
    tmp_path: Path, hub_server: HubServer, lossy_proxy: FaultProxy
) -> None:
    model_id = _killed_run(tmp_path, hub_server, lossy_proxy)
    # The second process talks to the hub directly and knows nothing but the model id.
    env = child_env(tmp_path, hub_server.url, hub_server.api_key)
    second = Child(tmp_path, RECOVER_SCRIPT, [model_id], env)
    result = second.result()
    assert result["flushed"], second.describe()
    state = server_state(hub_server, model_id)
    assert_epochs_exactly_once(state, N)
    assert state["config"] == {"lr": 0.01} and state["epochs"] == N
    assert events_total(hub_server) == 1  # its reply was lost, it was re-sent, it is kept once
    assert result["stats"]["worker"]["present"].get("metrics", 0) >= 1  # the hub had the hung batch


def test_kill9_then_trainhub_sync_delivers_every_epoch_exactly_once(
    tmp_path: Path, hub_server: HubServer, lossy_proxy: FaultProxy
) -> None:
    model_id = _killed_run(tmp_path, hub_server, lossy_proxy)
    env = child_env(tmp_path, hub_server.url, hub_server.api_key)
    spool_dir = tmp_path / "spool"

    status = run_cli(["sync", "--status", "--spool-dir", str(spool_dir)], env)
    assert status.returncode == 0, status.stderr
    assert model_id in status.stdout and "pending:" in status.stdout

    # The spool remembers the proxy's URL; --url sends it to the hub itself.
    done = run_cli(["sync", "--spool-dir", str(spool_dir), "--url", hub_server.url], env)
    assert done.returncode == 0, done.stdout + done.stderr
    m = re.search(
        r"Summary: 1 spools, (\d+) items sent, (\d+) already present, 0 failed, 0 left", done.stdout
    )
    assert m, done.stdout
    assert int(m.group(2)) >= 1  # the hung metrics batch: the hub said it had it
    state = server_state(hub_server, model_id)
    assert_epochs_exactly_once(state, N)
    assert events_total(hub_server) == 1
    assert list(spool_dir.glob("*.db")) == []  # delivered spools are removed

    again = run_cli(["sync", "--spool-dir", str(spool_dir), "--url", hub_server.url], env)
    assert again.returncode == 0 and "Summary: 0 spools" in again.stdout


def test_sync_skips_the_spool_of_a_live_process(tmp_path: Path, hub_server: HubServer) -> None:
    env = child_env(tmp_path, hub_server.url, hub_server.api_key, {"TRAINHUB_MODE": "offline"})
    model_id = secrets.token_hex(10)
    child = Child(tmp_path, CHILD_SCRIPT, [model_id, "2", "0", "hang"], env)
    try:
        child.wait_for("HANGING")
        busy = run_cli(["sync", "--spool-dir", str(tmp_path / "spool")], env)
        assert "skipped, in use by a running process" in busy.stdout, busy.stdout
        status = run_cli(["sync", "--status", "--spool-dir", str(tmp_path / "spool")], env)
        assert "(in use by a running process)" in status.stdout
    finally:
        child.close()
    done = run_cli(["sync", "--spool-dir", str(tmp_path / "spool")], env)  # the owner died: go
    assert done.returncode == 0, done.stdout + done.stderr
    assert_epochs_exactly_once(server_state(hub_server, model_id), 2)


def test_offline_run_then_sync_gives_the_same_server_state_as_an_online_run(
    tmp_path: Path, hub_server: HubServer
) -> None:
    online_id, offline_id = secrets.token_hex(10), secrets.token_hex(10)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    online = Child(
        tmp_path,
        CHILD_SCRIPT,
        [online_id, str(N), "0", "finish"],
        child_env(tmp_path / "a", hub_server.url, hub_server.api_key),
    )
    assert online.result()["flushed"], online.describe()

    offline_env = child_env(tmp_path / "b", "http://127.0.0.1:9", None, {"TRAINHUB_MODE": "offline"})
    offline = Child(tmp_path, CHILD_SCRIPT, [offline_id, str(N), "0", "finish"], offline_env)
    offline.result()
    assert "send them with `trainhub sync`" in "\n".join(offline.output)
    # The offline run never knew a hub (its spool says port 9): sync with the real URL and key.
    sync_env = child_env(tmp_path / "b", hub_server.url, hub_server.api_key)
    done = run_cli(["sync", "--spool-dir", str(tmp_path / "b" / "spool")], sync_env)
    assert done.returncode == 0, done.stdout + done.stderr

    a, b = server_state(hub_server, online_id), server_state(hub_server, offline_id)
    assert a["status"] == b["status"] == "done"
    assert_epochs_exactly_once(a, N)
    for key in ("metrics", "final_metrics", "config", "epochs", "name"):
        assert a[key] == b[key], key
    # Same checkpoint slots with the same epochs and flags; the files differ only by the model id.
    assert [c[:2] + c[4:] for c in a["checkpoints"]] == [c[:2] + c[4:] for c in b["checkpoints"]]
    assert {c[0] for c in a["checkpoints"]} >= {"final", "best"}
