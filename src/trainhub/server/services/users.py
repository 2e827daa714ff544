"""Users and teams: creation, passwords (argon2id), disabling, membership.

A user owns API keys and projects; a team owns projects its members share. An admin user sees
every project and may hold admin keys. Disabling a user ends their web sessions and makes their
keys fail at once (keys are checked against the database on every request).

Each user has a personal default project named after them (made on first use), where models go
when a client names no project; an admin user's default project is ``default``.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Mapping
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from trainhub.protocol import ErrorCode
from trainhub.server.errors import ApiError
from trainhub.server.services import audit, iso
from trainhub.server.store import keys as key_q
from trainhub.server.store import users as q
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import projects, utcnow

__all__ = [
    "ADMIN_DEFAULT_PROJECT",
    "MIN_PASSWORD_LENGTH",
    "USER_NAME_RE",
    "add_member",
    "check_password",
    "create_team",
    "create_user",
    "default_project",
    "disable_user",
    "enable_user",
    "list_teams",
    "list_users",
    "remove_member",
    "require_user",
    "set_password",
    "team_out",
    "user_out",
]

#: User and team names: lowercase letters, digits, ``_.-``; 1-64 characters.
USER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
ADMIN_DEFAULT_PROJECT = "default"
#: Names no user or team may take (``default`` is the admin users' default project).
_RESERVED = frozenset({"default", "admin-team", "-", "cli", "server"})
# argon2id with the library's defaults (RFC 9106 low-memory profile): ~50 ms per check here.
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the user does not exist, so a login takes as long either way (made
    on first use: hashing costs ~50 ms, which every process start would pay otherwise)."""
    return _HASHER.hash(secrets.token_hex(16))


def default_project(user_name: str, is_admin: bool) -> str:
    """The project models go to when a client names none."""
    return ADMIN_DEFAULT_PROJECT if is_admin else user_name


def user_out(row: Mapping[str, Any]) -> dict[str, Any]:
    """The public view of a user (never the password hash)."""
    return {
        "id": row["id"],
        "name": row["name"],
        "is_admin": bool(row["is_admin"]),
        "created_at": iso(row["created_at"]),
        "disabled_at": iso(row["disabled_at"]),
        "teams": list(row.get("teams", [])),
    }


def team_out(row: Mapping[str, Any]) -> dict[str, Any]:
    """The public view of a team."""
    return {
        "id": row["id"],
        "name": row["name"],
        "created_at": iso(row["created_at"]),
        "members": list(row.get("members", [])),
    }


def _check_name(kind: str, name: str) -> None:
    if not USER_NAME_RE.match(name) or name in _RESERVED:
        raise ApiError(
            422,
            ErrorCode.VALIDATION_ERROR,
            f"{kind} name must be 1-64 of a-z 0-9 _ . - (starting with a letter or digit), not {name!r}",
        )


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ApiError(
            422,
            ErrorCode.VALIDATION_ERROR,
            f"a password needs {MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters",
        )


def create_user(
    store: Store,
    name: str,
    *,
    password: str | None = None,
    is_admin: bool = False,
    actor: str = audit.NOBODY,
) -> dict[str, Any]:
    """Create a user (without a password they can only use API keys).

    Raises:
        ApiError: 422 ``validation_error`` (bad name or password), 409 ``conflict`` (the name is
            taken, or a project of that name, their default project, belongs to someone else).
    """
    _check_name("user", name)
    if password is not None:
        _check_password(password)
    row = {
        "id": secrets.token_hex(6),
        "name": name,
        "password_hash": _HASHER.hash(password) if password is not None else None,
        "is_admin": is_admin,
        "created_at": utcnow(),
    }
    with store.write() as conn:
        if q.find_user(conn, name) is not None:
            raise ApiError(409, ErrorCode.CONFLICT, f"a user named {name!r} exists")
        taken = conn.execute(
            projects.select().where(projects.c.name == name, projects.c.owner_user_id.is_not(None))
        ).first()
        if taken is not None and not is_admin:
            raise ApiError(409, ErrorCode.CONFLICT, f"a project named {name!r} (a new user's default) exists")
        q.insert_user(conn, row)
        audit.record_in(conn, actor, "user.create", str(row["id"]), f"name={name} admin={is_admin}")
        saved = q.find_user(conn, str(row["id"]))
    assert saved is not None
    return user_out(saved)


def require_user(store: Store, ref: str) -> dict[str, Any]:
    """A user by id or name, or ApiError 404 ``user_not_found``."""
    with store.read() as conn:
        row = q.find_user(conn, ref)
    if row is None:
        raise ApiError(404, ErrorCode.USER_NOT_FOUND, f"no user {ref!r}")
    return dict(row)


def list_users(store: Store) -> list[dict[str, Any]]:
    """Every user, by name."""
    with store.read() as conn:
        return [user_out(r) for r in q.list_users(conn)]


def _set_disabled(store: Store, ref: str, disabled: bool, actor: str) -> dict[str, Any]:
    with store.write() as conn:
        row = q.find_user(conn, ref)
        if row is None:
            raise ApiError(404, ErrorCode.USER_NOT_FOUND, f"no user {ref!r}")
        if disabled:
            others = [u for u in q.list_users(conn) if u["is_admin"] and u["disabled_at"] is None]
            if row["is_admin"] and [u["id"] for u in others] == [row["id"]]:
                # Nobody could manage the hub any more (or enable this user again).
                raise ApiError(409, ErrorCode.CONFLICT, "cannot disable the last enabled admin user")
            if row["disabled_at"] is None:
                q.set_user(conn, row["id"], disabled_at=utcnow())
            key_q.delete_user_sessions(conn, row["id"])
        else:
            q.set_user(conn, row["id"], disabled_at=None)
        audit.record_in(
            conn, actor, "user.disable" if disabled else "user.enable", row["id"], f"name={row['name']}"
        )
        saved = q.find_user(conn, row["id"])
    assert saved is not None
    return user_out(saved)


def disable_user(store: Store, ref: str, actor: str = audit.NOBODY) -> dict[str, Any]:
    """Disable a user: their keys and web sessions stop working at once.

    Raises:
        ApiError: 404 ``user_not_found``; 409 ``conflict`` for the last enabled admin user.
    """
    return _set_disabled(store, ref, True, actor)


def enable_user(store: Store, ref: str, actor: str = audit.NOBODY) -> dict[str, Any]:
    """Enable a disabled user again (their unrevoked keys work again)."""
    return _set_disabled(store, ref, False, actor)


def set_password(store: Store, ref: str, password: str, actor: str = audit.NOBODY) -> None:
    """Set (or replace) a user's password; ends their password web sessions."""
    _check_password(password)
    hashed = _HASHER.hash(password)
    with store.write() as conn:
        row = q.find_user(conn, ref)
        if row is None:
            raise ApiError(404, ErrorCode.USER_NOT_FOUND, f"no user {ref!r}")
        q.set_user(conn, row["id"], password_hash=hashed)
        key_q.delete_user_sessions(conn, row["id"])
        audit.record_in(conn, actor, "user.password", row["id"], f"name={row['name']}")


def check_password(store: Store, name: str, password: str) -> dict[str, Any] | None:
    """The enabled user with this name and password, else None (same work either way)."""
    if len(password) > MAX_PASSWORD_LENGTH or len(name) > 64:
        return None
    with store.read() as conn:
        row = q.find_user(conn, name.strip().lower(), with_hash=True)
    stored = row["password_hash"] if row is not None and row["password_hash"] else _dummy_hash()
    try:
        _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or not row["password_hash"] or row["disabled_at"] is not None:
        return None
    if _HASHER.check_needs_rehash(stored):
        with store.write() as conn:
            q.set_user(conn, row["id"], password_hash=_HASHER.hash(password))
    return dict(row)


def create_team(store: Store, name: str, actor: str = audit.NOBODY) -> dict[str, Any]:
    """Create a team (409 ``conflict`` if the name is taken)."""
    _check_name("team", name)
    row = {"id": secrets.token_hex(6), "name": name, "created_at": utcnow()}
    with store.write() as conn:
        if q.find_team(conn, name) is not None:
            raise ApiError(409, ErrorCode.CONFLICT, f"a team named {name!r} exists")
        q.insert_team(conn, row)
        audit.record_in(conn, actor, "team.create", str(row["id"]), f"name={name}")
    return team_out({**row, "members": []})


def list_teams(store: Store) -> list[dict[str, Any]]:
    """Every team, by name, with its members."""
    with store.read() as conn:
        return [team_out(r) for r in q.list_teams(conn)]


def _member_change(store: Store, team_ref: str, user_ref: str, add: bool, actor: str) -> dict[str, Any]:
    with store.write() as conn:
        team = q.find_team(conn, team_ref)
        if team is None:
            raise ApiError(404, ErrorCode.TEAM_NOT_FOUND, f"no team {team_ref!r}")
        user = q.find_user(conn, user_ref)
        if user is None:
            raise ApiError(404, ErrorCode.USER_NOT_FOUND, f"no user {user_ref!r}")
        if add:
            q.add_member(conn, team["id"], user["id"])
        else:
            q.remove_member(conn, team["id"], user["id"])
        action = "team.add" if add else "team.remove"
        audit.record_in(conn, actor, action, team["id"], f"team={team['name']} user={user['name']}")
        row = next(t for t in q.list_teams(conn) if t["id"] == team["id"])
    return team_out(row)


def add_member(store: Store, team: str, user: str, actor: str = audit.NOBODY) -> dict[str, Any]:
    """Put a user in a team (idempotent); returns the team."""
    return _member_change(store, team, user, True, actor)


def remove_member(store: Store, team: str, user: str, actor: str = audit.NOBODY) -> dict[str, Any]:
    """Take a user out of a team (idempotent); returns the team."""
    return _member_change(store, team, user, False, actor)
