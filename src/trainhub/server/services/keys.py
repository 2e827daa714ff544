"""API keys: generation, hashing, listing, revocation, and the first-start admin key.

Keys are ``ul_`` + 40 lowercase hex (160 random bits), stored as sha256 hex: with that much
entropy a fast hash is enough, and lookups stay one indexed query.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any

from trainhub.protocol import ErrorCode
from trainhub.server.errors import ApiError, ConfigError
from trainhub.server.services import audit, iso
from trainhub.server.services.users import create_user
from trainhub.server.store import keys as q
from trainhub.server.store import users as user_q
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import utcnow

__all__ = [
    "KEY_RE",
    "bootstrap_admin",
    "create_key",
    "generate_key",
    "hash_secret",
    "is_registered",
    "key_out",
    "list_keys",
    "revoke_key",
]

KEY_RE = re.compile(r"^ul_[0-9a-f]{40}$")


def generate_key() -> str:
    """A new random key."""
    return "ul_" + secrets.token_hex(20)


def hash_secret(secret: str) -> str:
    """sha256 hex of a key or session token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def key_out(row: Mapping[str, Any]) -> dict[str, Any]:
    """The public view of a key (never its hash or plaintext)."""
    is_admin = bool(row["is_admin"])
    read_only = bool(row["read_only"])
    return {
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "user": row.get("user_name"),
        "scope": "admin" if is_admin else "read" if read_only else "write",
        "projects": row.get("projects"),
        "is_admin": is_admin,
        "read_only": read_only,
        "created_at": iso(row["created_at"]),
        "last_used_at": iso(row["last_used_at"]),
        "revoked_at": iso(row["revoked_at"]),
    }


def create_key(
    store: Store,
    name: str,
    *,
    is_admin: bool,
    plaintext: str | None = None,
    read_only: bool = False,
    user: str | None = None,
    projects: list[str] | None = None,
    actor: str = audit.NOBODY,
) -> tuple[dict[str, Any], str]:
    """Create a key of a user (id or name; default: the first admin user); returns
    ``(key, plaintext)``.

    The plaintext is returned once and never stored. A ``read_only`` key may only read
    (GET/HEAD); it cannot also be an admin key, and only an admin user's key can be one.
    ``projects`` limits which projects the key may write to. ``actor`` (who asked) goes to the
    audit log.

    Raises:
        ApiError: 422 ``validation_error`` (admin and read-only; admin key of a non-admin user),
            404 ``user_not_found``.
        ConfigError: ``plaintext`` is not shaped like a key.
    """
    if is_admin and read_only:
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, "a key cannot be both admin and read-only")
    secret = plaintext or generate_key()
    if not KEY_RE.match(secret):
        raise ConfigError("an API key must be 'ul_' followed by 40 lowercase hex characters")
    with store.read() as conn:
        owner = user_q.find_user(conn, user) if user is not None else user_q.first_admin(conn)
    if owner is None:
        message = f"no user {user!r}" if user is not None else "no enabled admin user to own the key"
        raise ApiError(404, ErrorCode.USER_NOT_FOUND, message)
    if is_admin and not owner["is_admin"]:
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, f"user {owner['name']!r} is not an admin user")
    row = {
        "id": secrets.token_hex(6),
        "name": name,
        "key_hash": hash_secret(secret),
        "prefix": secret[:9],
        "is_admin": is_admin,
        "read_only": read_only,
        "created_at": utcnow(),
        "user_id": owner["id"],
        "projects": sorted(set(projects)) if projects is not None else None,
    }
    with store.write() as conn:
        q.insert_key(conn, row)
        scope = "admin" if is_admin else "read" if read_only else "write"
        limit = f" projects={','.join(row['projects'])}" if projects is not None else ""
        detail = f"scope={scope} user={owner['name']} name={name}{limit}"
        audit.record_in(conn, actor, "key.create", str(row["id"]), detail)
        saved = q.find_key(conn, hash_secret(secret))
    assert saved is not None
    return key_out(saved), secret


def list_keys(store: Store, user: str | None = None) -> list[dict[str, Any]]:
    """Every key (or one user's, by id or name), oldest first."""
    with store.read() as conn:
        user_id = None
        if user is not None:
            found = user_q.find_user(conn, user)
            if found is None:
                raise ApiError(404, ErrorCode.USER_NOT_FOUND, f"no user {user!r}")
            user_id = str(found["id"])
        return [key_out(r) for r in q.list_keys(conn, user_id)]


def revoke_key(store: Store, key_id: str, actor: str = audit.NOBODY) -> dict[str, Any]:
    """Revoke a key and end its web sessions; ApiError 404 ``key_not_found``."""
    with store.write() as conn:
        row = q.revoke_key(conn, key_id, utcnow())
        if row is not None:
            audit.record_in(conn, actor, "key.revoke", key_id, f"name={row['name']}")
    if row is None:
        raise ApiError(404, ErrorCode.KEY_NOT_FOUND, f"no key with id {key_id!r}")
    return key_out(row)


def bootstrap_admin(store: Store, admin_key: str | None) -> tuple[str | None, bool]:
    """On an empty key table, register ``admin_key`` or generate one (for the first admin user,
    made as ``admin`` when there is none).

    Returns ``(plaintext, generated)``: the new key and whether it was generated (and so must be
    shown once); ``(None, False)`` if keys already exist.
    """
    with store.read() as conn:
        if q.count_keys(conn):
            return None, False
        admin = user_q.first_admin(conn)
    if admin is None:
        create_user(store, "admin", is_admin=True, actor="server")
    _, secret = create_key(store, "admin", is_admin=True, plaintext=admin_key, actor="server")
    return secret, admin_key is None


def is_registered(store: Store, key: str) -> bool:
    """Whether a key (revoked or not) is in the table."""
    with store.read() as conn:
        return q.find_key(conn, hash_secret(key)) is not None
