"""Hub outage, 429 storm, 5xx storm: training never waits, the client waits as told, nothing is lost
and nothing is stored twice. And the server's own per-key rate limit."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from delivery_helpers import (
    API,
    CHILD_SCRIPT,
    PASS,
    Action,
    Child,
    FaultProxy,
    assert_epochs_exactly_once,
    child_env,
    events_total,
    median,
    percentile,
    server_state,
)

if TYPE_CHECKING:
    from conftest import HubServer


def test_hub_outage_does_not_slow_training_and_loses_nothing(tmp_path: Path, hub_server: HubServer) -> None:
    epochs, model_id, port = 60, secrets.token_hex(10), hub_server.port
    child = Child(
        tmp_path,
        CHILD_SCRIPT,
        [model_id, str(epochs), "0.03", "finish"],
        child_env(tmp_path, hub_server.url, hub_server.api_key),
    )
    try:
        child.wait_for("EPOCH 10 ")
        hub_server.stop()
        down_from = int(child.wait_for("EPOCH ").split()[1])  # the first epoch after the hub is gone
        until = int(child.wait_for(f"EPOCH {down_from + 20} ").split()[1])
        hub_server.start(port=port)  # same port: the run's spool knows this URL
        result = child.result()
    finally:
        child.close()
    assert result["flushed"], child.describe()
    times = child.epoch_times()
    up = [t for e, t in times.items() if e <= 10 or e > until + 2]
    down = [t for e, t in times.items() if down_from <= e <= until]
    # The callbacks only append to the spool: no slower while the hub is down (generous bounds on a
    # shared machine; a callback that waited for the network would take a connect timeout or more).
    assert median(down) <= 3 * median(up) + 0.002, (median(down), median(up))
    assert percentile(down, 0.9) <= 5 * percentile(up, 0.9) + 0.02, (sorted(down), sorted(up))
    state = server_state(hub_server, model_id)
    assert_epochs_exactly_once(state, epochs)
    assert state["status"] == "done"
    assert events_total(hub_server) == 1


def _storm(
    tmp_path: Path, hub_server: HubServer, rule: Callable[[str, str, int], Action]
) -> tuple[str, FaultProxy]:
    model_id = secrets.token_hex(10)
    proxy = FaultProxy(hub_server.url, rule)
    try:
        child = Child(
            tmp_path,
            CHILD_SCRIPT,
            [model_id, "12", "0.02", "finish"],
            child_env(tmp_path, proxy.url, hub_server.api_key),
        )
        try:
            result = child.result(timeout=120)
        finally:
            child.close()
        assert result["flushed"], child.describe()
    finally:
        proxy.close()
    return model_id, proxy


def test_429_storm_the_client_waits_as_told_and_nothing_is_lost_or_doubled(
    tmp_path: Path, hub_server: HubServer
) -> None:
    retry_after = 0.4

    def rule(method: str, path: str, n: int) -> Action:
        if n >= 0 and n % 3 != 2:  # two of every three requests are refused
            return Action("answer", 429, {"Retry-After": str(retry_after)})
        return PASS

    model_id, proxy = _storm(tmp_path, hub_server, rule)
    seen = proxy.requests()
    refused = [s for s in seen if s.action.kind == "answer"]
    assert len(refused) >= 6
    # The worker sends one request at a time: the request after a 429 is its retry, and it must not
    # come before Retry-After allowed (a little clock slack between threads).
    for i, s in enumerate(seen[:-1]):
        if s.action.kind == "answer":
            assert seen[i + 1].t - s.replied_at >= retry_after - 0.02, (i, seen[i + 1].t - s.replied_at)
    state = server_state(hub_server, model_id)
    assert_epochs_exactly_once(state, 12)
    assert state["status"] == "done" and {c[0] for c in state["checkpoints"]} >= {"final", "best"}
    assert events_total(hub_server) == 1


def test_5xx_storm_with_lost_replies_nothing_is_lost_or_doubled(
    tmp_path: Path, hub_server: HubServer
) -> None:
    def rule(method: str, path: str, n: int) -> Action:
        if n < 0:
            return PASS
        if n % 3 == 0:  # refused before the server saw it
            return Action("answer", 503)
        if n % 3 == 1:  # the server did the work, the reply is lost
            return Action("lose_reply", 502)
        return PASS

    model_id, proxy = _storm(tmp_path, hub_server, rule)
    assert sum(s.action.kind == "lose_reply" for s in proxy.requests()) >= 3
    state = server_state(hub_server, model_id)
    assert_epochs_exactly_once(state, 12)
    assert state["status"] == "done" and state["final_metrics"] == {"metrics/mAP50(B)": 0.5}
    assert events_total(hub_server) == 1  # stored by the lost-reply attempt, the re-send is a duplicate


def test_server_rate_limit_answers_429_with_retry_after(hub_server_factory: Callable[..., HubServer]) -> None:
    server = hub_server_factory(env={"TRAINHUB_RATE_LIMIT_RPS": "1", "TRAINHUB_RATE_LIMIT_BURST": "3"})
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=30) as c:
        codes = [c.get(f"{API}/models").status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429, codes
        r = c.get(f"{API}/models")
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        assert c.get(f"{API}/health").status_code == 200  # never limited
    # Another key has its own bucket.
    with httpx.Client(base_url=server.url, headers={"x-api-key": "ul_" + "b2" * 20}, timeout=30) as other:
        assert other.get(f"{API}/models").status_code == 401  # not limited, just unknown
