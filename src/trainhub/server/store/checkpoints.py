"""SQL of checkpoint slots (one row per model and kind)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.dialects import upsert
from trainhub.server.store.rows import as_dict
from trainhub.server.store.tables import checkpoints

__all__ = ["get_checkpoint", "list_checkpoints", "put_checkpoint"]

_ORDER = sa.case({"last": 0, "best": 1, "final": 2}, value=checkpoints.c.kind, else_=3)


def put_checkpoint(conn: Connection, dialect: str, row: Mapping[str, Any]) -> None:
    """Point slot ``(model_id, kind)`` at a blob, replacing what it pointed at."""
    stmt = upsert(dialect, checkpoints).values(**row)
    keys = ("model_id", "kind")
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={k: stmt.excluded[k] for k in row if k not in keys}
    )
    conn.execute(stmt)


def get_checkpoint(conn: Connection, model_id: str, kind: str) -> Mapping[str, Any] | None:
    """One checkpoint row, or None."""
    query = sa.select(checkpoints).where(checkpoints.c.model_id == model_id, checkpoints.c.kind == kind)
    row = conn.execute(query).first()
    return as_dict(row) if row else None


def list_checkpoints(conn: Connection, model_id: str) -> list[Mapping[str, Any]]:
    """A model's checkpoints in the order last, best, final."""
    query = sa.select(checkpoints).where(checkpoints.c.model_id == model_id).order_by(_ORDER)
    return [as_dict(r) for r in conn.execute(query)]
