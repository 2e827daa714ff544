"""Dialect-specific SQL: the ``INSERT .. ON CONFLICT`` constructs of SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["upsert"]


def upsert(dialect: str, table: sa.Table) -> Any:
    """An insert that supports ``on_conflict_do_update`` / ``on_conflict_do_nothing``.

    Both dialects spell it the same way, so callers stay dialect-free.
    """
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"no upsert for dialect {dialect!r}")
