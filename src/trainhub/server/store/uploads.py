"""SQL of upload sessions (the ``uploads`` table; parts live in the object store)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.rows import as_dict
from trainhub.server.store.tables import uploads

__all__ = [
    "add_bytes_received",
    "delete_upload",
    "expired_uploads",
    "find_open_upload",
    "get_upload",
    "insert_upload",
    "update_upload",
]


def insert_upload(conn: Connection, row: Mapping[str, Any]) -> None:
    """Add a session row."""
    conn.execute(sa.insert(uploads).values(**row))


def get_upload(conn: Connection, upload_id: str) -> Mapping[str, Any] | None:
    """One session row, or None."""
    row = conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first()
    return as_dict(row) if row else None


def find_open_upload(
    conn: Connection, model_id: str, kind: str, size: int, sha256: str, part_size: int, now: datetime
) -> Mapping[str, Any] | None:
    """The newest unexpired open session of the same file into the same slot, if any."""
    query = (
        sa.select(uploads)
        .where(
            uploads.c.model_id == model_id,
            uploads.c.kind == kind,
            uploads.c.size == size,
            uploads.c.sha256 == sha256,
            uploads.c.part_size == part_size,
            uploads.c.state == "open",
            uploads.c.expires_at > now,
        )
        .order_by(uploads.c.created_at.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    return as_dict(row) if row else None


def update_upload(conn: Connection, upload_id: str, **values: Any) -> None:
    """Set columns of one session."""
    conn.execute(sa.update(uploads).where(uploads.c.id == upload_id).values(**values))


def add_bytes_received(
    conn: Connection, upload_id: str, n: int, updated_at: datetime, expires_at: datetime
) -> None:
    """Count ``n`` more part bytes received and push the expiry back."""
    conn.execute(
        sa.update(uploads)
        .where(uploads.c.id == upload_id)
        .values(bytes_received=uploads.c.bytes_received + n, updated_at=updated_at, expires_at=expires_at)
    )


def expired_uploads(conn: Connection, now: datetime, limit: int) -> list[Mapping[str, Any]]:
    """Up to ``limit`` sessions past their expiry (any state), oldest first."""
    query = sa.select(uploads).where(uploads.c.expires_at <= now).order_by(uploads.c.expires_at).limit(limit)
    return [as_dict(r) for r in conn.execute(query)]


def delete_upload(conn: Connection, upload_id: str) -> None:
    """Remove a session row."""
    conn.execute(sa.delete(uploads).where(uploads.c.id == upload_id))
