"""Backends chosen by URL scheme (MLflow's store-by-URL registry, in small).

``DATABASE_BACKENDS`` maps a database URL scheme to an engine factory; ``STORAGE_BACKENDS`` maps
a storage URL scheme to an object-store factory. An unknown scheme raises :class:`ConfigError`
naming the known ones.

* ``sqlite:///path`` -- the embedded default (one machine, one server process is best);
* ``postgresql://user@host:5432/db`` (psycopg 3; ``postgresql+psycopg://`` is the same) -- N workers;
* ``file:///path`` -- blobs on a local (or shared) filesystem;
* ``s3://bucket/prefix`` -- any S3-compatible service; endpoint and credentials from
  :class:`~trainhub.server.objects.StorageOptions` or the usual ``AWS_*`` variables.

Backend libraries (psycopg, boto3) are imported only when their scheme is used, so each is an
optional extra (``trainhub[postgres]``, ``trainhub[s3]``).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from trainhub.server.errors import ConfigError
from trainhub.server.objects import ObjectStore, StorageOptions
from trainhub.server.objects.local import LocalObjectStore
from trainhub.server.store.engine import Store, postgresql_engine, sqlite_engine

__all__ = [
    "DATABASE_BACKENDS",
    "STORAGE_BACKENDS",
    "check_database_url",
    "check_storage_url",
    "open_objects",
    "open_store",
]


def _s3(url: str, options: StorageOptions | None) -> ObjectStore:
    from trainhub.server.objects.s3 import S3ObjectStore  # boto3 is an optional extra

    return S3ObjectStore.from_url(url, options)


DATABASE_BACKENDS: dict[str, Callable[[str], Engine]] = {
    "postgresql": postgresql_engine,
    "sqlite": sqlite_engine,
}
STORAGE_BACKENDS: dict[str, Callable[[str, StorageOptions | None], ObjectStore]] = {
    "file": LocalObjectStore.from_url,
    "s3": _s3,
}


def _scheme(url: str) -> str:
    # "postgresql+psycopg://..." -> "postgresql": the driver suffix does not pick the backend.
    head, sep, _ = url.partition("://")
    if not sep:
        head, sep, _ = url.partition(":")
    scheme = head.split("+", 1)[0].lower() if sep else ""
    return "postgresql" if scheme == "postgres" else scheme


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


def open_objects(url: str, options: StorageOptions | None = None) -> ObjectStore:
    """Open the object store of a storage URL.

    Raises:
        ConfigError: unknown scheme, missing extra, or the storage is not reachable.
    """
    return STORAGE_BACKENDS[_check("storage", url, dict(STORAGE_BACKENDS))](url, options)
