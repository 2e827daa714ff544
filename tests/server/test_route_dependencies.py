"""The shared dependencies of the native API never cost a trip through the thread pool.

FastAPI runs a plain ``def`` dependency in the thread pool. The shared ones (``routes/deps.py``,
``require_admin``, ``model_guard``) only read request or app state, so they must be ``async def``:
a thread-pool round trip per dependency per request was measurable on the hottest route.
"""

from __future__ import annotations

import inspect
import typing

import pytest
from fastapi.params import Depends

from trainhub.server import access, auth
from trainhub.server.routes import deps


def _shared() -> list[tuple[str, object]]:
    found = []
    for name in deps.__all__:
        value = getattr(deps, name)
        if typing.get_origin(value) is typing.Annotated:
            markers = [m for m in typing.get_args(value)[1:] if isinstance(m, Depends)]
            found += [(name, m.dependency) for m in markers]
    return found


def test_every_shared_dependency_is_found() -> None:
    names = {name for name, _ in _shared()}
    assert {"StoreDep", "ObjectsDep", "SettingsDep", "AuthDep", "BaseUrl", "PrincipalDep"} <= names


@pytest.mark.parametrize(
    ("name", "call"), [*_shared(), ("require_admin", auth.require_admin), ("model_guard", access.model_guard)]
)
def test_shared_dependency_is_async(name: str, call: object) -> None:
    assert inspect.iscoroutinefunction(call), f"{name} would run in the thread pool"
