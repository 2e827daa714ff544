"""Who may see and write what: the tenancy checks every API family and page goes through.

Projects and datasets belong to a user or a team. A principal (a key, or a user's password
session, see :mod:`trainhub.server.auth`) sees:

* everything, if its user is an admin user;
* else the projects and datasets its user owns and those of the user's teams.

It may write (any method but GET/HEAD/OPTIONS) to what it sees unless the key is read-only; a key
that lists projects may write only to those (and may not create datasets).

What a principal cannot see answers 404, the same as what does not exist (the ids of other
tenants' models are not confirmed); what it sees but may not change answers 403 ``forbidden``.
A model is as visible as its project.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from trainhub.protocol import ErrorCode
from trainhub.server.auth import Principal
from trainhub.server.errors import ApiError
from trainhub.server.store.dialects import upsert
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import models, projects, utcnow

__all__ = [
    "READ_METHODS",
    "can_see",
    "can_write",
    "check_dataset",
    "check_model",
    "check_models",
    "model_guard",
    "owner_clause",
    "principal_of",
    "writable_project",
]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def principal_of(request: Request) -> Principal:
    """The principal the auth middleware (or a compat dependency) put on the request."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):  # a route outside the auth middleware: a bug
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "an API key is required")
    return principal


def _unrestricted(p: Principal) -> bool:
    return p.user_admin and p.projects is None


def owner_clause(table: sa.Table, p: Principal) -> sa.ColumnElement[bool]:
    """SQL condition: rows of ``table`` (with ``owner_user_id``/``owner_team_id``) ``p`` sees."""
    if p.user_admin:
        return sa.true()
    conds: list[sa.ColumnElement[bool]] = []
    if p.user_id is not None:
        conds.append(table.c.owner_user_id == p.user_id)
    if p.team_ids:
        conds.append(table.c.owner_team_id.in_(sorted(p.team_ids)))
    return sa.or_(*conds) if conds else sa.false()


def can_see(p: Principal, row: Mapping[str, Any]) -> bool:
    """Whether ``p`` sees a project or dataset row (its owner columns)."""
    if p.user_admin:
        return True
    if p.user_id is not None and row.get("owner_user_id") == p.user_id:
        return True
    team = row.get("owner_team_id")
    return team is not None and team in p.team_ids


def can_write(p: Principal, project: Mapping[str, Any]) -> bool:
    """Whether ``p`` may write to a project row (``name`` + owner columns)."""
    if p.read_only or not can_see(p, project):
        return False
    return p.projects is None or project["name"] in p.projects


def _project_of_model(conn: Connection, model_id: str) -> Mapping[str, Any] | None:
    query = (
        sa.select(projects.c.name, projects.c.owner_user_id, projects.c.owner_team_id)
        .join(models, models.c.project_id == projects.c.id)
        .where(models.c.id == model_id)
    )
    row = conn.execute(query).first()
    return dict(row._mapping) if row else None


def _not_found(model_id: str) -> ApiError:
    return ApiError(404, ErrorCode.MODEL_NOT_FOUND, f"no model with id {model_id!r}")


def check_model(store: Store, p: Principal, model_id: str, *, write: bool) -> None:
    """404 ``model_not_found`` if ``p`` cannot see the model, 403 if it may not write to it.

    An unknown model passes: the service behind answers its own 404 (and ``PUT /models/{id}``
    may create it).
    """
    if _unrestricted(p) and not (write and p.read_only):
        return
    with store.read() as conn:
        project = _project_of_model(conn, model_id)
    if project is None:
        return
    if not can_see(p, project):
        raise _not_found(model_id)
    if write and not can_write(p, project):
        raise ApiError(403, ErrorCode.FORBIDDEN, f"this key may not write to project {project['name']!r}")


def check_models(store: Store, p: Principal, model_ids: Iterable[str]) -> None:
    """:func:`check_model` (read) for several models, in one query."""
    ids = sorted(set(model_ids))
    if p.user_admin or not ids:
        return
    query = (
        sa.select(models.c.id, projects.c.owner_user_id, projects.c.owner_team_id)
        .join(projects, models.c.project_id == projects.c.id)
        .where(models.c.id.in_(ids))
    )
    with store.read() as conn:
        for row in conn.execute(query):
            if not can_see(p, dict(row._mapping)):
                raise _not_found(row.id)


def check_dataset(p: Principal, row: Mapping[str, Any], *, write: bool) -> None:
    """404 ``not_found`` if ``p`` cannot see a dataset row, 403 if it may not change it."""
    if not can_see(p, row):
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no dataset with id {row['id']!r}")
    if write and (p.read_only or p.projects is not None):
        raise ApiError(403, ErrorCode.FORBIDDEN, "this key may not change datasets")


def writable_project(
    conn: Connection, dialect: str, p: Principal, name: str | None, *, team_id: str | None = None
) -> int:
    """The id of the project ``p`` writes a new model to, creating the project if needed.

    ``name`` None or ``"default"`` means the principal's default project. A new project belongs
    to ``team_id`` if given (``p`` must be in that team or an admin user), else to ``p``'s user.

    Raises:
        ApiError: 403 ``forbidden`` (the project exists but ``p`` may not write to it, or the key
            lists projects and this is not one of them, or ``p`` is not in the team).
    """
    if name is None or name == "default":
        name = p.default_project
    if team_id is not None and not p.user_admin and team_id not in p.team_ids:
        raise ApiError(403, ErrorCode.FORBIDDEN, "you are not a member of that team")
    row = conn.execute(sa.select(projects).where(projects.c.name == name)).first()
    if row is None:
        if p.projects is not None and name not in p.projects:
            raise ApiError(403, ErrorCode.FORBIDDEN, f"this key may not write to project {name!r}")
        owner = {"owner_team_id": team_id} if team_id is not None else {"owner_user_id": p.user_id}
        conn.execute(
            upsert(dialect, projects)
            .values(name=name, created_at=utcnow(), **owner)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = conn.execute(sa.select(projects).where(projects.c.name == name)).first()
        assert row is not None
    project = dict(row._mapping)
    if not can_write(p, project):
        raise ApiError(403, ErrorCode.FORBIDDEN, f"this key may not write to project {name!r}")
    return int(project["id"])


async def model_guard(request: Request) -> None:
    """Router dependency of the native API: checks ``{model_id}`` routes against the caller."""
    model_id = request.path_params.get("model_id")
    if model_id is None:
        return
    store: Store = request.app.state.store
    write = request.method.upper() not in READ_METHODS
    principal = principal_of(request)
    if _unrestricted(principal) and not (write and principal.read_only):
        return  # check_model's own first test, without a trip through the thread pool
    await run_in_threadpool(check_model, store, principal, str(model_id), write=write)
