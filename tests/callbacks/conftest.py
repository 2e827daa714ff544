"""Fixtures of the callback tests."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest
from hub_fakes import FakeClock, FakeSession

from trainhub.callbacks import hub


@pytest.fixture(autouse=True)
def _strict_callbacks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Re-raise callback errors (tests that check swallowing turn this off) and reset module state."""
    monkeypatch.setattr(hub, "raise_errors", True)
    monkeypatch.setattr(hub, "_reported", set())
    monkeypatch.setattr(hub, "_default_session", None)
    yield


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(hub, "clock", clock)
    return clock


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


@pytest.fixture
def model_info(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Stand-in ``ultralytics.utils.torch_utils`` whose model_info_for_loggers returns fixed numbers.

    Fake modules rather than a patch of the real one: the real function needs a real model, and
    importing Ultralytics into the test process has side effects (settings file, network probes).
    """
    info = {"model/parameters": 3157200.0, "model/GFLOPs": 8.9, "model/speed_PyTorch(ms)": 12.5}
    torch_utils = types.ModuleType("ultralytics.utils.torch_utils")
    torch_utils.model_info_for_loggers = lambda trainer: dict(info)  # type: ignore[attr-defined]
    utils = types.ModuleType("ultralytics.utils")
    utils.torch_utils = torch_utils  # type: ignore[attr-defined]
    package = types.ModuleType("ultralytics")
    package.utils = utils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ultralytics", package)
    monkeypatch.setitem(sys.modules, "ultralytics.utils", utils)
    monkeypatch.setitem(sys.modules, "ultralytics.utils.torch_utils", torch_utils)
    return info
