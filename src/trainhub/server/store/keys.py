"""SQL of API keys and web sessions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.rows import as_dict
from trainhub.server.store.tables import api_keys, users, web_sessions

__all__ = [
    "count_keys",
    "delete_session",
    "delete_user_sessions",
    "find_key",
    "find_session_key",
    "find_session_user",
    "insert_key",
    "insert_session",
    "keys_of_user",
    "list_keys",
    "revoke_key",
    "touch_key",
]

_PUBLIC = (
    api_keys.c.id,
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.is_admin,
    api_keys.c.read_only,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
    api_keys.c.user_id,
    api_keys.c.projects,
)
#: What authentication needs of a key's owner (outer join: a key may predate users).
_OWNER = (
    users.c.name.label("user_name"),
    users.c.is_admin.label("user_is_admin"),
    users.c.disabled_at.label("user_disabled_at"),
)
_KEY_WITH_OWNER = sa.select(*_PUBLIC, *_OWNER).select_from(
    api_keys.outerjoin(users, users.c.id == api_keys.c.user_id)
)


def count_keys(conn: Connection) -> int:
    """Number of keys, revoked ones included."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one())


def insert_key(conn: Connection, row: Mapping[str, Any]) -> None:
    """Insert one key row (the hash, never the plaintext)."""
    conn.execute(sa.insert(api_keys).values(**row))


#: Built once: every API request runs it, and a statement built per call pays SQLAlchemy's cache-key
#: walk each time (a statement object memoizes its key).
_FIND_KEY = _KEY_WITH_OWNER.where(api_keys.c.key_hash == sa.bindparam("key_hash"))


def find_key(conn: Connection, key_hash: str) -> Mapping[str, Any] | None:
    """The key with this hash (revoked or not) and its owner's name/admin/disabled, or None."""
    row = conn.execute(_FIND_KEY, {"key_hash": key_hash}).first()
    return as_dict(row) if row else None


def list_keys(conn: Connection, user_id: str | None = None) -> list[Mapping[str, Any]]:
    """Every key (or one user's), oldest first, with the owner's name, without hashes."""
    query = _KEY_WITH_OWNER.order_by(api_keys.c.created_at)
    if user_id is not None:
        query = query.where(api_keys.c.user_id == user_id)
    return [as_dict(r) for r in conn.execute(query)]


def keys_of_user(conn: Connection, user_id: str) -> list[str]:
    """The ids of a user's keys."""
    return [r[0] for r in conn.execute(sa.select(api_keys.c.id).where(api_keys.c.user_id == user_id))]


def revoke_key(conn: Connection, key_id: str, now: datetime) -> Mapping[str, Any] | None:
    """Revoke a key (idempotent; keeps the first revocation time) and drop its web sessions."""
    live = sa.and_(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
    conn.execute(sa.update(api_keys).where(live).values(revoked_at=now))
    conn.execute(sa.delete(web_sessions).where(web_sessions.c.key_id == key_id))
    row = conn.execute(_KEY_WITH_OWNER.where(api_keys.c.id == key_id)).first()
    return as_dict(row) if row else None


def touch_key(conn: Connection, key_id: str, now: datetime) -> None:
    """Record that a key was used."""
    conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


def insert_session(
    conn: Connection,
    token_hash: str,
    now: datetime,
    expires_at: datetime,
    *,
    key_id: str | None = None,
    user_id: str | None = None,
) -> None:
    """Store a web session of a key or of a user (its token hash only) and drop expired ones."""
    conn.execute(sa.delete(web_sessions).where(web_sessions.c.expires_at < now))
    row = {
        "token_hash": token_hash,
        "key_id": key_id,
        "user_id": user_id,
        "created_at": now,
        "expires_at": expires_at,
    }
    conn.execute(sa.insert(web_sessions).values(**row))


def find_session_key(conn: Connection, token_hash: str, now: datetime) -> Mapping[str, Any] | None:
    """The unrevoked key behind an unexpired session, or None."""
    query = _KEY_WITH_OWNER.join(web_sessions, web_sessions.c.key_id == api_keys.c.id).where(
        web_sessions.c.token_hash == token_hash,
        web_sessions.c.expires_at > now,
        api_keys.c.revoked_at.is_(None),
        users.c.disabled_at.is_(None),
    )
    row = conn.execute(query).first()
    return as_dict(row) if row else None


def find_session_user(conn: Connection, token_hash: str, now: datetime) -> Mapping[str, Any] | None:
    """The enabled user behind an unexpired password session, or None."""
    query = (
        sa.select(users.c.id, users.c.name, users.c.is_admin)
        .join(web_sessions, web_sessions.c.user_id == users.c.id)
        .where(
            web_sessions.c.token_hash == token_hash,
            web_sessions.c.expires_at > now,
            users.c.disabled_at.is_(None),
        )
    )
    row = conn.execute(query).first()
    return as_dict(row) if row else None


def delete_user_sessions(conn: Connection, user_id: str) -> None:
    """End every web session of a user (password sessions and those of their keys)."""
    conn.execute(sa.delete(web_sessions).where(web_sessions.c.user_id == user_id))
    key_ids = sa.select(api_keys.c.id).where(api_keys.c.user_id == user_id)
    conn.execute(sa.delete(web_sessions).where(web_sessions.c.key_id.in_(key_ids)))


def delete_session(conn: Connection, token_hash: str) -> None:
    """Forget one web session."""
    conn.execute(sa.delete(web_sessions).where(web_sessions.c.token_hash == token_hash))
