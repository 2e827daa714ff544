"""Fixtures of the client unit tests: an isolated environment and a fake hub on httpx.MockTransport."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from trainhub.client import guard

Responder = Callable[[httpx.Request], httpx.Response | None]


@pytest.fixture(autouse=True)
def client_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No TRAINHUB_* from the developer's shell, spool and config under tmp, guards re-raise."""
    import os

    for name in list(os.environ):
        if name.startswith("TRAINHUB_") or name == "DO_NOT_TRACK":
            monkeypatch.delenv(name)
    monkeypatch.setenv("TRAINHUB_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    previous = guard.set_reraise(True)
    yield tmp_path
    guard.set_reraise(previous)


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    headers: httpx.Headers
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeHub:
    """Records requests; answers 200 with a plausible body unless a responder in ``script`` answers."""

    calls: list[Call] = field(default_factory=list)
    script: list[Responder] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        with self.lock:
            self.calls.append(
                Call(request.method, request.url.path, dict(request.url.params), request.headers, body)
            )
            for responder in list(self.script):
                response = responder(request)
                if response is not None:
                    return response
        if request.url.path.endswith("/heartbeat"):
            return httpx.Response(200, json={"agent_id": "a1", "status": "training", "stop_requested": False})
        return httpx.Response(200, json={})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def paths(self, method: str | None = None) -> list[str]:
        with self.lock:
            return [c.path for c in self.calls if method is None or c.method == method]

    def non_heartbeat(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if not c.path.endswith("/heartbeat")]


def fail_times(
    n: int, status: int, *, path_part: str = "", headers: dict[str, str] | None = None
) -> Responder:
    """A responder answering ``status`` to the first ``n`` requests whose path contains ``path_part``."""
    left = [n]

    def respond(request: httpx.Request) -> httpx.Response | None:
        if path_part in request.url.path and left[0] > 0:
            left[0] -= 1
            return httpx.Response(
                status, headers=headers, json={"error": {"code": "x", "message": f"failing {status}"}}
            )
        return None

    return respond


@pytest.fixture
def fake_hub() -> FakeHub:
    return FakeHub()


class RecordingWait:
    """A worker ``wait`` that records the delays and never sleeps."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.delays.append(seconds)
        return False


@pytest.fixture
def no_sleep() -> RecordingWait:
    return RecordingWait()
