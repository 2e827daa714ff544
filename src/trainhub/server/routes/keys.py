"""Routes of API key management (admin keys only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from trainhub.server.auth import require_admin
from trainhub.server.routes.deps import StoreDep
from trainhub.server.schemas import KeyCreateIn
from trainhub.server.services import keys as svc

__all__ = ["router"]

router = APIRouter(tags=["keys"], dependencies=[Depends(require_admin)])


@router.get("/keys")
def list_keys(store: StoreDep) -> list[dict[str, Any]]:
    """Every key (never its secret)."""
    return svc.list_keys(store)


@router.post("/keys", status_code=201)
def create_key(body: KeyCreateIn, store: StoreDep) -> dict[str, Any]:
    """Create a key; the reply's ``key`` is the plaintext, shown this once."""
    key, secret = svc.create_key(store, body.name, is_admin=body.is_admin, read_only=body.read_only)
    return {**key, "key": secret}


@router.delete("/keys/{key_id}")
def revoke_key(key_id: str, store: StoreDep) -> dict[str, Any]:
    """Revoke a key (its requests get 401 from now on)."""
    return svc.revoke_key(store, key_id)
