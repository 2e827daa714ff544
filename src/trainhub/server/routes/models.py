"""Routes of projects and models: create, read, list, status, heartbeat, stop; and /health."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from trainhub import __version__
from trainhub.protocol import MAX_NAME_LENGTH, ErrorCode
from trainhub.server.errors import ApiError
from trainhub.server.routes.deps import BaseUrl, PrincipalDep, StoreDep
from trainhub.server.schemas import (
    HeartbeatInSchema,
    HeartbeatOutSchema,
    ModelCreateIn,
    ModelOutSchema,
    ProjectCreateIn,
    StatusUpdateIn,
    check_model_id,
)
from trainhub.server.services import models as svc

__all__ = ["router"]

router = APIRouter()


@router.get("/health", tags=["meta"])
def health() -> dict[str, Any]:
    """Liveness; needs no key."""
    return {"status": "ok", "version": __version__}


@router.get("/projects", tags=["projects"])
def list_projects(store: StoreDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    """The projects the caller sees, with model count and owner."""
    return svc.list_projects(store, principal)


@router.post("/projects", tags=["projects"], status_code=201)
def create_project(body: ProjectCreateIn, store: StoreDep, principal: PrincipalDep) -> dict[str, Any]:
    """Create a project owned by the caller (or by ``team``); idempotent by name."""
    return svc.create_project(store, principal, body.name, body.team)


@router.get("/models", tags=["models"], response_model=list[ModelOutSchema])
def list_models(
    store: StoreDep,
    principal: PrincipalDep,
    base: BaseUrl,
    project: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
    q: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The models the caller sees, newest first; filter by project name and a name substring."""
    return svc.list_models(store, principal, base, project=project, q_text=q, limit=limit)


@router.post("/models", tags=["models"], status_code=201, response_model=ModelOutSchema)
def create_model(
    body: ModelCreateIn, store: StoreDep, principal: PrincipalDep, base: BaseUrl
) -> dict[str, Any]:
    """Create a model with a server-made id."""
    model, _ = svc.create_model(store, principal, None, body, base)
    return model


@router.put("/models/{model_id}", tags=["models"], response_model=ModelOutSchema)
def put_model(
    model_id: str,
    body: ModelCreateIn,
    store: StoreDep,
    principal: PrincipalDep,
    base: BaseUrl,
    response: Response,
) -> dict[str, Any]:
    """Create-or-get a model with a client-made id: 201 when created, 200 when it existed."""
    try:
        check_model_id(model_id)
    except ValueError as exc:
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, f"model_id: {exc}") from exc
    model, created = svc.create_model(store, principal, model_id, body, base)
    response.status_code = 201 if created else 200
    return model


@router.get("/models/{model_id}", tags=["models"], response_model=ModelOutSchema)
def get_model(model_id: str, store: StoreDep, base: BaseUrl) -> dict[str, Any]:
    """One model."""
    return svc.get_model(store, model_id, base)


@router.post("/models/{model_id}/status", tags=["models"], response_model=ModelOutSchema)
def update_status(model_id: str, body: StatusUpdateIn, store: StoreDep, base: BaseUrl) -> dict[str, Any]:
    """Set the status (and final metrics)."""
    return svc.update_status(store, model_id, body, base)


@router.post("/models/{model_id}/heartbeat", tags=["models"], response_model=HeartbeatOutSchema)
def heartbeat(model_id: str, body: HeartbeatInSchema, store: StoreDep) -> dict[str, Any]:
    """Record a heartbeat; the reply carries the stable agent id and the stop flag."""
    return svc.heartbeat(store, model_id, body.agent, body.interval)


@router.post("/models/{model_id}/stop", tags=["models"], response_model=ModelOutSchema)
def request_stop(model_id: str, store: StoreDep, base: BaseUrl) -> dict[str, Any]:
    """Ask the run to stop (seen by the client in its next heartbeat reply)."""
    return svc.request_stop(store, model_id, base)
