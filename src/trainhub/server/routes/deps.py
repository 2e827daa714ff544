"""Shared route dependencies: the app's store, object store, settings and base URL.

Every one is ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency in the
thread pool, a round trip through another thread (~0.1-0.3 ms of the event loop's time per
dependency per request) for what is an attribute lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from trainhub.server.access import principal_of
from trainhub.server.auth import Authenticator, Principal
from trainhub.server.objects import ObjectStore
from trainhub.server.settings import ServerSettings
from trainhub.server.store.engine import Store

__all__ = ["AuthDep", "BaseUrl", "ObjectsDep", "PrincipalDep", "SettingsDep", "StoreDep", "base_url"]


async def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _objects(request: Request) -> ObjectStore:
    objects: ObjectStore = request.app.state.objects
    return objects


async def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


async def _authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


async def base_url(request: Request) -> str:
    """The hub's public root URL: the ``public_url`` setting, else the request's own base URL."""
    settings: ServerSettings = request.app.state.settings
    return settings.public_url or str(request.base_url).rstrip("/")


StoreDep = Annotated[Store, Depends(_store)]
ObjectsDep = Annotated[ObjectStore, Depends(_objects)]
SettingsDep = Annotated[ServerSettings, Depends(_settings)]
AuthDep = Annotated[Authenticator, Depends(_authenticator)]
BaseUrl = Annotated[str, Depends(base_url)]


async def _principal(request: Request) -> Principal:
    return principal_of(request)


PrincipalDep = Annotated[Principal, Depends(_principal)]
