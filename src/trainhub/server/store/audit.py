"""SQL of the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.rows import as_dict
from trainhub.server.store.tables import audit_log

__all__ = ["insert_entry", "list_entries"]


def insert_entry(
    conn: Connection, *, at: datetime, actor: str, action: str, target: str | None, detail: str | None
) -> None:
    """Append one entry (long values are cut to the column sizes)."""
    row = {
        "at": at,
        "actor": actor[:64],
        "action": action[:64],
        "target": target[:200] if target is not None else None,
        "detail": detail[:500] if detail is not None else None,
    }
    conn.execute(sa.insert(audit_log).values(**row))


def list_entries(conn: Connection, *, limit: int, before_id: int | None) -> list[Mapping[str, Any]]:
    """Entries newest first, optionally only those older than ``before_id``."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    return [as_dict(r) for r in conn.execute(query)]
