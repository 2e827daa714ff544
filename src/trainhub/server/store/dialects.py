"""Dialect-specific SQL: the ``INSERT .. ON CONFLICT`` constructs of SQLite and PostgreSQL, and
per-key write locks (advisory locks on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
serializes every writer)."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

__all__ = ["lock_key", "lock_keys", "upsert"]


def upsert(dialect: str, table: sa.Table) -> Any:
    """An insert that supports ``on_conflict_do_update`` / ``on_conflict_do_nothing``.

    Both dialects spell it the same way, so callers stay dialect-free.
    """
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"no upsert for dialect {dialect!r}")


def _lock_id(key: str) -> int:
    # A stable signed 64-bit id (hash() is salted per process; workers must agree).
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


def lock_key(conn: Connection, dialect: str, key: str) -> None:
    """Hold a write lock on ``key`` until the transaction ends (a no-op on SQLite).

    Serializes read-modify-write sequences of one key across server workers, where an upsert
    alone is not enough (say, recomputing a summary from rows another transaction is writing).
    """
    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_id(key)})


def lock_keys(conn: Connection, dialect: str, keys: list[str]) -> None:
    """:func:`lock_key` for several keys, in sorted order (so two writers never deadlock)."""
    for key in sorted(set(keys)):
        lock_key(conn, dialect, key)
