"""Backends chosen by URL scheme (MLflow's store-by-URL registry, in small).

``DATABASE_BACKENDS`` maps a database URL scheme to an engine factory; ``STORAGE_BACKENDS`` maps
a storage URL scheme to an object-store factory. Adding PostgreSQL or S3 is one entry each. An
unknown scheme raises :class:`ConfigError` naming the known ones.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from trainhub.server.errors import ConfigError
from trainhub.server.objects import ObjectStore
from trainhub.server.objects.local import LocalObjectStore
from trainhub.server.store.engine import Store, sqlite_engine

__all__ = [
    "DATABASE_BACKENDS",
    "STORAGE_BACKENDS",
    "check_database_url",
    "check_storage_url",
    "open_objects",
    "open_store",
]

DATABASE_BACKENDS: dict[str, Callable[[str], Engine]] = {"sqlite": sqlite_engine}
STORAGE_BACKENDS: dict[str, Callable[[str], ObjectStore]] = {"file": LocalObjectStore.from_url}


def _scheme(url: str) -> str:
    # "postgresql+psycopg://..." -> "postgresql": the driver suffix does not pick the backend.
    head, sep, _ = url.partition("://")
    if not sep:
        head, sep, _ = url.partition(":")
    return head.split("+", 1)[0].lower() if sep else ""


def _check(kind: str, url: str, known: dict[str, object]) -> str:
    scheme = _scheme(url)
    if scheme not in known:
        names = ", ".join(sorted(known))
        shown = scheme or "(none)"
        raise ConfigError(f"unknown {kind} URL scheme {shown!r} in {url!r}; known schemes: {names}")
    return scheme


def check_database_url(url: str) -> None:
    """Raise ConfigError unless the database URL has a known scheme."""
    _check("database", url, dict(DATABASE_BACKENDS))


def check_storage_url(url: str) -> None:
    """Raise ConfigError unless the storage URL has a known scheme."""
    _check("storage", url, dict(STORAGE_BACKENDS))


def open_store(url: str) -> Store:
    """Open the SQL store of a database URL (not yet migrated)."""
    return Store(DATABASE_BACKENDS[_check("database", url, dict(DATABASE_BACKENDS))](url))


def open_objects(url: str) -> ObjectStore:
    """Open the object store of a storage URL."""
    return STORAGE_BACKENDS[_check("storage", url, dict(STORAGE_BACKENDS))](url)
