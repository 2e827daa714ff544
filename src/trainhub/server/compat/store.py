"""SQL of the compatibility layer: runs, staged Platform uploads, model lookups and paging.

Model and project reads take ``visible``, an :func:`trainhub.server.access.owner_clause` on
``projects``: only rows of the projects the caller sees match. Model rows carry their project's
``project`` name and owner columns (``owner_user_id``/``owner_team_id``) for the access checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.dialects import upsert
from trainhub.server.store.rows import as_dict
from trainhub.server.store.tables import compat_runs, compat_uploads, metric_points, models, projects

__all__ = [
    "bump_run",
    "count_models",
    "delete_points",
    "find_model_by_name",
    "get_model",
    "get_project",
    "get_run",
    "get_upload",
    "has_val_points",
    "insert_upload",
    "list_models_page",
    "list_projects_page",
    "update_upload",
]

_MODEL_COLUMNS = (
    *models.c,
    projects.c.name.label("project"),
    projects.c.owner_user_id,
    projects.c.owner_team_id,
)
_PROJECT_COLUMNS = (
    projects.c.id,
    projects.c.name,
    projects.c.created_at,
    projects.c.owner_user_id,
    projects.c.owner_team_id,
)
Visible: TypeAlias = sa.ColumnElement[bool] | None


def get_run(conn: Connection, model_id: str) -> Mapping[str, Any] | None:
    """The compat row of a model, or None."""
    row = conn.execute(sa.select(compat_runs).where(compat_runs.c.model_id == model_id)).first()
    return as_dict(row) if row else None


def bump_run(
    conn: Connection, dialect: str, model_id: str, protocol: str, owner: str | None, now: datetime
) -> int:
    """Count one more run of a model (a Platform ``training_started``); returns its run number."""
    stmt = upsert(dialect, compat_runs).values(
        model_id=model_id, protocol=protocol, owner=owner, run_count=1, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_id"],
        set_={"run_count": compat_runs.c.run_count + 1, "updated_at": now, "protocol": protocol},
    )
    conn.execute(stmt)
    row = get_run(conn, model_id)
    assert row is not None
    return int(row["run_count"])


def get_model(conn: Connection, model_id: str, visible: Visible = None) -> Mapping[str, Any] | None:
    """One model row (with its project's name and owner), if in a ``visible`` project; or None."""
    query = sa.select(*_MODEL_COLUMNS).join(projects).where(models.c.id == model_id)
    if visible is not None:
        query = query.where(visible)
    row = conn.execute(query).first()
    return as_dict(row) if row else None


def find_model_by_name(
    conn: Connection,
    project: str,
    name: str,
    statuses: tuple[str, ...] | None = None,
    visible: Visible = None,
) -> Mapping[str, Any] | None:
    """The newest model named ``name`` in ``project`` (optionally only in ``statuses``, and only
    if the project is ``visible``), or None."""
    query = sa.select(*_MODEL_COLUMNS).join(projects).where(projects.c.name == project, models.c.name == name)
    if visible is not None:
        query = query.where(visible)
    if statuses is not None:
        query = query.where(models.c.status.in_(statuses))
    query = query.order_by(models.c.created_at.desc(), models.c.id.desc()).limit(1)
    row = conn.execute(query).first()
    return as_dict(row) if row else None


def list_models_page(
    conn: Connection, *, limit: int, after_id: str | None, visible: Visible = None
) -> list[Mapping[str, Any]]:
    """Models of ``visible`` projects newest first, continuing after model ``after_id`` (cursor
    paging; a cursor that is not a visible model starts from the top)."""
    query = sa.select(*_MODEL_COLUMNS).join(projects)
    if visible is not None:
        query = query.where(visible)
    if after_id is not None:
        anchor = conn.execute(
            sa.select(models.c.created_at, models.c.id)
            .join(projects)
            .where(models.c.id == after_id, visible if visible is not None else sa.true())
        ).first()
        if anchor is not None:
            query = query.where(
                sa.or_(
                    models.c.created_at < anchor.created_at,
                    sa.and_(models.c.created_at == anchor.created_at, models.c.id < anchor.id),
                )
            )
    query = query.order_by(models.c.created_at.desc(), models.c.id.desc()).limit(limit)
    return [as_dict(r) for r in conn.execute(query)]


def count_models(conn: Connection, visible: Visible = None) -> int:
    """Number of models (of ``visible`` projects, if given)."""
    query = sa.select(sa.func.count()).select_from(models.join(projects))
    if visible is not None:
        query = query.where(visible)
    return int(conn.execute(query).scalar_one())


def get_project(conn: Connection, ident: str) -> Mapping[str, Any] | None:
    """A project by id (all digits) or by name, with its model count and owner; or None."""
    count = sa.func.count(models.c.id).label("model_count")
    query = (
        sa.select(*_PROJECT_COLUMNS, count)
        .select_from(projects.outerjoin(models, models.c.project_id == projects.c.id))
        .group_by(*_PROJECT_COLUMNS)
    )
    query = (
        query.where(projects.c.id == int(ident)) if ident.isdigit() else query.where(projects.c.name == ident)
    )
    row = conn.execute(query).first()
    return as_dict(row) if row else None


def list_projects_page(
    conn: Connection, *, limit: int, after_id: str | None, visible: Visible = None
) -> tuple[list[Mapping[str, Any]], int]:
    """``visible`` projects by id (cursor: continue after project id ``after_id``) and their count."""
    count = sa.func.count(models.c.id).label("model_count")
    query = (
        sa.select(*_PROJECT_COLUMNS, count)
        .select_from(projects.outerjoin(models, models.c.project_id == projects.c.id))
        .group_by(*_PROJECT_COLUMNS)
    )
    total_query = sa.select(sa.func.count()).select_from(projects)
    if visible is not None:
        query = query.where(visible)
        total_query = total_query.where(visible)
    if after_id is not None and after_id.isdigit():
        query = query.where(projects.c.id > int(after_id))
    rows: list[Mapping[str, Any]] = [
        as_dict(r) for r in conn.execute(query.order_by(projects.c.id).limit(limit))
    ]
    total = int(conn.execute(total_query).scalar_one())
    return rows, total


def has_val_points(conn: Connection, model_id: str) -> bool:
    """Whether any epoch of the model has a ``val/*`` metric (so its epochs are validated ones)."""
    query = (
        sa.select(metric_points.c.step)
        .where(metric_points.c.model_id == model_id, metric_points.c.name.like("val/%"))
        .limit(1)
    )
    return conn.execute(query).first() is not None


def delete_points(conn: Connection, model_id: str, step: int) -> None:
    """Remove every point of one step of a model."""
    conn.execute(
        sa.delete(metric_points).where(metric_points.c.model_id == model_id, metric_points.c.step == step)
    )


def insert_upload(conn: Connection, row: Mapping[str, Any]) -> None:
    """Stage a Platform upload."""
    conn.execute(sa.insert(compat_uploads).values(**row))


def get_upload(conn: Connection, upload_id: str) -> Mapping[str, Any] | None:
    """One staged upload, or None."""
    row = conn.execute(sa.select(compat_uploads).where(compat_uploads.c.id == upload_id)).first()
    return as_dict(row) if row else None


def update_upload(conn: Connection, upload_id: str, **values: Any) -> None:
    """Set columns of one staged upload."""
    conn.execute(sa.update(compat_uploads).where(compat_uploads.c.id == upload_id).values(**values))
