"""Shared route dependencies: the app's store, object store, settings and base URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from trainhub.server.access import principal_of
from trainhub.server.auth import Authenticator, Principal
from trainhub.server.objects import ObjectStore
from trainhub.server.settings import ServerSettings
from trainhub.server.store.engine import Store

__all__ = ["AuthDep", "BaseUrl", "ObjectsDep", "PrincipalDep", "SettingsDep", "StoreDep", "base_url"]


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _objects(request: Request) -> ObjectStore:
    objects: ObjectStore = request.app.state.objects
    return objects


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def _authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


def base_url(request: Request) -> str:
    """The hub's public root URL: the ``public_url`` setting, else the request's own base URL."""
    settings: ServerSettings = request.app.state.settings
    return settings.public_url or str(request.base_url).rstrip("/")


StoreDep = Annotated[Store, Depends(_store)]
ObjectsDep = Annotated[ObjectStore, Depends(_objects)]
SettingsDep = Annotated[ServerSettings, Depends(_settings)]
AuthDep = Annotated[Authenticator, Depends(_authenticator)]
BaseUrl = Annotated[str, Depends(base_url)]
PrincipalDep = Annotated[Principal, Depends(principal_of)]
