"""Fixtures of the framework integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainhub.client import guard


@pytest.fixture
def reporting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hub_server: Any) -> Iterator[Any]:
    """Point the client at ``hub_server`` (spool under tmp, no usage events, offline HF) and make
    trainhub's guards re-raise so that a bug fails the test instead of being logged."""
    for name in ("TRAINHUB_PROJECT", "TRAINHUB_MODE", "TRAINHUB_SPOOL_DIR", "DO_NOT_TRACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRAINHUB_URL", hub_server.url)
    monkeypatch.setenv("TRAINHUB_API_KEY", hub_server.api_key)
    monkeypatch.setenv("TRAINHUB_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("TRAINHUB_EVENTS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    previous = guard.set_reraise(True)
    yield hub_server
    guard.set_reraise(previous)
