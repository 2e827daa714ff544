"""SQL of users, teams and team membership."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.rows import as_dict
from trainhub.server.store.tables import team_members, teams, users

__all__ = [
    "add_member",
    "count_users",
    "find_team",
    "find_user",
    "first_admin",
    "insert_team",
    "insert_user",
    "list_teams",
    "list_users",
    "remove_member",
    "set_user",
    "team_ids_of",
]

_USER = (users.c.id, users.c.name, users.c.is_admin, users.c.created_at, users.c.disabled_at)


def count_users(conn: Connection) -> int:
    """Number of users, disabled ones included."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())


def insert_user(conn: Connection, row: Mapping[str, Any]) -> None:
    """Insert one user row."""
    conn.execute(sa.insert(users).values(**row))


def find_user(conn: Connection, ref: str, *, with_hash: bool = False) -> Mapping[str, Any] | None:
    """The user with this id or name, or None (``password_hash`` only when asked)."""
    cols = (*_USER, users.c.password_hash) if with_hash else _USER
    row = conn.execute(sa.select(*cols).where(sa.or_(users.c.id == ref, users.c.name == ref))).first()
    return as_dict(row) if row else None


def first_admin(conn: Connection) -> Mapping[str, Any] | None:
    """The oldest enabled admin user, or None."""
    query = (
        sa.select(*_USER)
        .where(users.c.is_admin.is_(True), users.c.disabled_at.is_(None))
        .order_by(users.c.created_at, users.c.id)
        .limit(1)
    )
    row = conn.execute(query).first()
    return as_dict(row) if row else None


def list_users(conn: Connection) -> list[dict[str, Any]]:
    """Every user by name, with the names of their teams."""
    rows: list[dict[str, Any]] = [
        dict(as_dict(r)) for r in conn.execute(sa.select(*_USER).order_by(users.c.name))
    ]
    members = conn.execute(
        sa.select(team_members.c.user_id, teams.c.name).join(teams, teams.c.id == team_members.c.team_id)
    ).all()
    by_user: dict[str, list[str]] = {}
    for user_id, team in members:
        by_user.setdefault(user_id, []).append(team)
    for row in rows:
        row["teams"] = sorted(by_user.get(row["id"], []))
    return rows


def set_user(conn: Connection, user_id: str, **values: Any) -> None:
    """Update one user's columns."""
    conn.execute(sa.update(users).where(users.c.id == user_id).values(**values))


def insert_team(conn: Connection, row: Mapping[str, Any]) -> None:
    """Insert one team row."""
    conn.execute(sa.insert(teams).values(**row))


def find_team(conn: Connection, ref: str) -> Mapping[str, Any] | None:
    """The team with this id or name, or None."""
    row = conn.execute(sa.select(teams).where(sa.or_(teams.c.id == ref, teams.c.name == ref))).first()
    return as_dict(row) if row else None


def list_teams(conn: Connection) -> list[dict[str, Any]]:
    """Every team by name, with its members' names."""
    rows: list[dict[str, Any]] = [
        dict(as_dict(r)) for r in conn.execute(sa.select(teams).order_by(teams.c.name))
    ]
    members = conn.execute(
        sa.select(team_members.c.team_id, users.c.name).join(users, users.c.id == team_members.c.user_id)
    ).all()
    by_team: dict[str, list[str]] = {}
    for team_id, user in members:
        by_team.setdefault(team_id, []).append(user)
    for row in rows:
        row["members"] = sorted(by_team.get(row["id"], []))
    return rows


def add_member(conn: Connection, team_id: str, user_id: str) -> bool:
    """Put a user in a team; False if they already were."""
    exists = conn.execute(
        sa.select(team_members.c.user_id).where(
            team_members.c.team_id == team_id, team_members.c.user_id == user_id
        )
    ).first()
    if exists:
        return False
    conn.execute(sa.insert(team_members).values(team_id=team_id, user_id=user_id))
    return True


def remove_member(conn: Connection, team_id: str, user_id: str) -> bool:
    """Take a user out of a team; False if they were not in it."""
    result = conn.execute(
        sa.delete(team_members).where(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
    )
    return bool(result.rowcount)


def team_ids_of(conn: Connection, user_id: str) -> frozenset[str]:
    """The ids of the teams a user is in."""
    rows = conn.execute(sa.select(team_members.c.team_id).where(team_members.c.user_id == user_id))
    return frozenset(r[0] for r in rows)
