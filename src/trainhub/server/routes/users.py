"""Routes of users and teams (admin keys only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trainhub.server.auth import Principal, require_admin
from trainhub.server.routes.deps import StoreDep
from trainhub.server.schemas import TeamCreateIn, UserCreateIn
from trainhub.server.services import users as svc

__all__ = ["router"]

router = APIRouter(tags=["users"], dependencies=[Depends(require_admin)])
Admin = Annotated[Principal, Depends(require_admin)]


@router.get("/users")
def list_users(store: StoreDep) -> list[dict[str, Any]]:
    """Every user with their teams (never a password hash)."""
    return svc.list_users(store)


@router.post("/users", status_code=201)
def create_user(body: UserCreateIn, store: StoreDep, admin: Admin) -> dict[str, Any]:
    """Create a user (without a password: API keys only)."""
    return svc.create_user(
        store, body.name, password=body.password, is_admin=body.is_admin, actor=admin.actor
    )


@router.post("/users/{user}/disable")
def disable_user(user: str, store: StoreDep, admin: Admin) -> dict[str, Any]:
    """Disable a user: their keys and web sessions stop working at once."""
    return svc.disable_user(store, user, actor=admin.actor)


@router.post("/users/{user}/enable")
def enable_user(user: str, store: StoreDep, admin: Admin) -> dict[str, Any]:
    """Enable a disabled user again."""
    return svc.enable_user(store, user, actor=admin.actor)


@router.get("/teams")
def list_teams(store: StoreDep) -> list[dict[str, Any]]:
    """Every team with its members."""
    return svc.list_teams(store)


@router.post("/teams", status_code=201)
def create_team(body: TeamCreateIn, store: StoreDep, admin: Admin) -> dict[str, Any]:
    """Create a team."""
    return svc.create_team(store, body.name, actor=admin.actor)


@router.put("/teams/{team}/members/{user}")
def add_member(team: str, user: str, store: StoreDep, admin: Admin) -> dict[str, Any]:
    """Put a user in a team (idempotent)."""
    return svc.add_member(store, team, user, actor=admin.actor)


@router.delete("/teams/{team}/members/{user}")
def remove_member(team: str, user: str, store: StoreDep, admin: Admin) -> dict[str, Any]:
    """Take a user out of a team (idempotent)."""
    return svc.remove_member(store, team, user, actor=admin.actor)
