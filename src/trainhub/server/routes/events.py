"""Routes of anonymous usage events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from trainhub.server.routes.deps import PrincipalDep, StoreDep
from trainhub.server.schemas import EventsBatchIn
from trainhub.server.services import events as svc

__all__ = ["router"]

router = APIRouter(tags=["events"])


@router.post("/events", status_code=202)
def post_events(body: EventsBatchIn, store: StoreDep, principal: PrincipalDep) -> dict[str, int]:
    """Store a batch of anonymous usage events (each ``id`` once); ``{"accepted", "duplicates"}``."""
    return svc.record_events(store, body, principal.user_id)


@router.get("/events/summary")
def events_summary(store: StoreDep, principal: PrincipalDep) -> dict[str, Any]:
    """Counts per kind and per trainhub / ultralytics version: of every event for an admin
    user, else of those sent with the caller's user's keys."""
    return svc.summary(store, None if principal.user_admin else principal.user_id)
