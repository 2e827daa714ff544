"""Small helpers of the server tests."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from conftest import HubServer

API = "/api/v1"


def client(server: HubServer, key: str | None = None) -> httpx.Client:
    """An httpx client on the server with a Bearer key (default: the admin key)."""
    return httpx.Client(base_url=server.url, headers=server.headers(key), timeout=30)


def new_model(c: httpx.Client, **body: Any) -> dict[str, Any]:
    """Create a model with a client-made id."""
    model_id = secrets.token_hex(10)
    r = c.put(f"{API}/models/{model_id}", json={"name": "run", **body})
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


def sha256(data: bytes) -> str:
    """Hex sha256."""
    return hashlib.sha256(data).hexdigest()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true or fail after ``timeout`` seconds (bounded, not a blind sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    """The reply is ``{"error": {"code", "message"}}`` with this status and code."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in r.text
