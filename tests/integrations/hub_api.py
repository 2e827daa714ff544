"""Helpers of the framework tests: a reporting environment, and what a real hub holds for a model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from trainhub.client.nullsession import NullSession
from trainhub.protocol import API_PREFIX

#: Every upload at once, heartbeats five times a second: a test run shows everything within seconds.
FAST = {"metrics": 0.0, "ckpt": 0.0, "heartbeat": 0.2}


def api(hub: Any) -> httpx.Client:
    return httpx.Client(base_url=hub.url + API_PREFIX, headers=hub.headers(), timeout=30.0, trust_env=False)


def model(hub: Any, model_id: str) -> dict[str, Any]:
    with api(hub) as client:
        out: dict[str, Any] = client.get(f"/models/{model_id}").raise_for_status().json()
        return out


def epochs(hub: Any, model_id: str) -> dict[int, dict[str, float | None]]:
    with api(hub) as client:
        rows = client.get(f"/models/{model_id}/metrics").raise_for_status().json()
    rows = rows["epochs"] if isinstance(rows, dict) else rows
    return {int(row["epoch"]): row["metrics"] for row in rows}


def checkpoints(hub: Any, model_id: str) -> dict[str, dict[str, Any]]:
    with api(hub) as client:
        return {c["kind"]: c for c in client.get(f"/models/{model_id}/checkpoints").raise_for_status().json()}


def models_in(hub: Any, project: str) -> list[dict[str, Any]]:
    with api(hub) as client:
        rows = client.get("/models", params={"project": project}).raise_for_status().json()
    return list(rows["models"] if isinstance(rows, dict) else rows)


def request_stop(hub: Any, model_id: str) -> None:
    """Press "Stop" in the hub, once the worker has created the model there (it may lag behind)."""
    with api(hub) as client:
        assert wait_for(lambda: client.get(f"/models/{model_id}").status_code == 200)
        client.post(f"/models/{model_id}/stop").raise_for_status()


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``condition`` every 20 ms up to ``timeout`` seconds (a heartbeat round trip, not luck)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class RecordingSession(NullSession):
    """A session that records what the integration asks of it, for hook-order tests."""

    def __init__(self, calls: list[str]) -> None:
        super().__init__()
        self.calls = calls
        self.model_id = "0123456789abcdef0123"
        self.model_url = f"http://hub.invalid/models/{self.model_id}"
        self.rate_limits = dict(FAST)

    def queue_metrics(self, epoch: int, metrics: Any) -> None:
        self.calls.append(f"session.queue_metrics({epoch})")

    def upload_metrics(self) -> None:
        self.calls.append("session.upload_metrics")

    def upload_model(
        self, epoch: int, weights: Any, is_best: bool = False, map: float = 0.0, final: bool = False
    ) -> None:
        kind = "final" if final else "last"
        self.calls.append(f"session.upload_model({kind}, epoch={epoch}, is_best={is_best})")

    def set_final_metrics(self, metrics: Any, *, status: str = "done") -> None:
        self.calls.append("session.set_final_metrics")

    def set_status(self, status: str) -> None:
        self.calls.append(f"session.set_status({status})")

    def close(self, timeout: float | None = None) -> None:
        self.calls.append("session.close")
