"""SQL of projects and models (and the per-model metric summary shown with a model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.dialects import upsert
from trainhub.server.store.rows import as_dict
from trainhub.server.store.tables import metric_points, models, projects, teams, users

__all__ = [
    "ensure_project",
    "get_model",
    "insert_model",
    "list_models",
    "list_projects",
    "metric_summaries",
    "update_model",
]

_MODEL_COLUMNS = (*models.c, projects.c.name.label("project"))


def ensure_project(conn: Connection, dialect: str, name: str, now: datetime) -> int:
    """The id of project ``name``, creating it if needed (safe under concurrent calls)."""
    conn.execute(
        upsert(dialect, projects)
        .values(name=name, created_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return int(conn.execute(sa.select(projects.c.id).where(projects.c.name == name)).scalar_one())


def list_projects(conn: Connection, visible: sa.ColumnElement[bool] | None = None) -> list[Mapping[str, Any]]:
    """Projects (those matching ``visible``, else all) with model count and owner, by name."""
    count = sa.func.count(models.c.id).label("model_count")
    cols = (
        projects.c.name,
        projects.c.created_at,
        users.c.name.label("owner_user"),
        teams.c.name.label("owner_team"),
    )
    query = (
        sa.select(*cols, count)
        .select_from(
            projects.outerjoin(models, models.c.project_id == projects.c.id)
            .outerjoin(users, users.c.id == projects.c.owner_user_id)
            .outerjoin(teams, teams.c.id == projects.c.owner_team_id)
        )
        .group_by(projects.c.id, *cols)
        .order_by(projects.c.name)
    )
    if visible is not None:
        query = query.where(visible)
    return [as_dict(r) for r in conn.execute(query)]


def insert_model(conn: Connection, dialect: str, row: Mapping[str, Any]) -> bool:
    """Insert a model unless its id exists; returns whether it was inserted."""
    result = conn.execute(upsert(dialect, models).values(**row).on_conflict_do_nothing(index_elements=["id"]))
    return bool(result.rowcount)


#: Built once (the metrics path runs it per request): a statement object memoizes its cache key,
#: one built per call pays SQLAlchemy's walk over its columns every time.
_GET_MODEL = sa.select(*_MODEL_COLUMNS).join(projects).where(models.c.id == sa.bindparam("b_model_id"))
_UPDATE_MODEL = sa.update(models).where(models.c.id == sa.bindparam("b_model_id"))


def get_model(conn: Connection, model_id: str) -> Mapping[str, Any] | None:
    """One model row with its project name, or None."""
    row = conn.execute(_GET_MODEL, {"b_model_id": model_id}).first()
    return as_dict(row) if row else None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_models(
    conn: Connection,
    *,
    project: str | None,
    q: str | None,
    limit: int,
    visible: sa.ColumnElement[bool] | None = None,
) -> list[Mapping[str, Any]]:
    """Models, newest first, optionally of one project and/or whose name contains ``q``, and
    only of projects matching ``visible``."""
    query = sa.select(*_MODEL_COLUMNS).join(projects)
    if visible is not None:
        query = query.where(visible)
    if project is not None:
        query = query.where(projects.c.name == project)
    if q:
        query = query.where(models.c.name.ilike(f"%{_escape_like(q)}%", escape="\\"))
    query = query.order_by(models.c.created_at.desc(), models.c.id.desc()).limit(limit)
    return [as_dict(r) for r in conn.execute(query)]


def update_model(conn: Connection, model_id: str, **values: Any) -> None:
    """Set columns of one model."""
    # The SET clause comes from the parameters' column names (compiled once per set of names).
    conn.execute(_UPDATE_MODEL, {"b_model_id": model_id, **values})


def metric_summaries(conn: Connection, model_ids: Sequence[str]) -> dict[str, list[Mapping[str, Any]]]:
    """Per model: one row per metric name with its max/min value and last step.

    One grouped query for any number of models, so a model list costs two queries, not N+1.
    """
    if not model_ids:
        return {}
    mp = metric_points
    query = (
        sa.select(
            mp.c.model_id,
            mp.c.name,
            sa.func.max(mp.c.value).label("max"),
            sa.func.min(mp.c.value).label("min"),
            sa.func.max(mp.c.step).label("last_step"),
        )
        .where(mp.c.model_id.in_(list(model_ids)))
        .group_by(mp.c.model_id, mp.c.name)
    )
    out: dict[str, list[Mapping[str, Any]]] = {}
    for row in conn.execute(query):
        out.setdefault(row.model_id, []).append(as_dict(row))
    return out
