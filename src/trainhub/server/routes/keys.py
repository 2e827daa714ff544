"""Routes of API key management (admin keys only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from trainhub.server.auth import Principal, require_admin
from trainhub.server.routes.deps import StoreDep
from trainhub.server.schemas import KeyCreateIn
from trainhub.server.services import audit
from trainhub.server.services import keys as svc

__all__ = ["router"]

router = APIRouter(tags=["keys"], dependencies=[Depends(require_admin)])
Admin = Annotated[Principal, Depends(require_admin)]


@router.get("/keys")
def list_keys(
    store: StoreDep, user: Annotated[str | None, Query(min_length=1, max_length=64)] = None
) -> list[dict[str, Any]]:
    """Every key, or one user's (never its secret)."""
    return svc.list_keys(store, user)


@router.post("/keys", status_code=201)
def create_key(body: KeyCreateIn, store: StoreDep, admin: Admin) -> dict[str, Any]:
    """Create a key; the reply's ``key`` is the plaintext, shown this once."""
    key, secret = svc.create_key(
        store,
        body.name,
        is_admin=body.is_admin,
        read_only=body.read_only,
        user=body.user or admin.user_id,
        projects=body.projects,
        actor=admin.actor,
    )
    return {**key, "key": secret}


@router.delete("/keys/{key_id}")
def revoke_key(key_id: str, store: StoreDep, admin: Admin) -> dict[str, Any]:
    """Revoke a key (its requests get 401 from now on)."""
    return svc.revoke_key(store, key_id, actor=admin.actor)


@router.get("/audit")
def list_audit(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> list[dict[str, Any]]:
    """The audit log, newest first (admin actions, logins, key use); page with ``before_id``."""
    return audit.list_entries(store, limit=limit, before_id=before_id)
