"""SQL of checkpoint slots (one row per model and kind)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.dialects import upsert
from trainhub.server.store.rows import as_dict
from trainhub.server.store.tables import checkpoints, models, projects

__all__ = ["blob_known_to_owner", "get_checkpoint", "list_checkpoints", "put_checkpoint"]

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


def blob_known_to_owner(conn: Connection, model_id: str, sha256: str) -> bool:
    """Whether a checkpoint of a model with the same owner as ``model_id``'s project already
    points at blob ``sha256``.

    Why: "already present" must not tell one tenant that another holds a file with that hash; a
    blob only another owner references is uploaded again (and stored once all the same).
    """
    owner = conn.execute(
        sa.select(projects.c.owner_user_id, projects.c.owner_team_id)
        .join(models, models.c.project_id == projects.c.id)
        .where(models.c.id == model_id)
    ).first()
    if owner is None:
        return False
    query = (
        sa.select(checkpoints.c.model_id)
        .join(models, models.c.id == checkpoints.c.model_id)
        .join(projects, projects.c.id == models.c.project_id)
        .where(
            checkpoints.c.sha256 == sha256,
            projects.c.owner_user_id.is_not_distinct_from(owner.owner_user_id),
            projects.c.owner_team_id.is_not_distinct_from(owner.owner_team_id),
        )
        .limit(1)
    )
    return conn.execute(query).first() is not None
