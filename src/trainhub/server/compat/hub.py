"""The Ultralytics HUB protocol (ultralytics 8.1 - 8.4.114 with hub-sdk), under ``/v1``.

Training path (what ``YOLO("<hub>/models/<id>").train()`` sends):

=========================================================  =====================================
``POST /v1/auth``                                          always JSON ``{"success": bool}``
``GET  /v1/models/{id}``                                   ``{"data": <model document>}``
``POST /v1/models``                                        create (logged-in local training)
``POST /v1/models/{id}``                                   metrics ``{"metrics": {...}, "type"}``
``POST /v1/models/{id}/upload``                            multipart checkpoint (streamed)
``POST /v1/agent/heartbeat/models/{id}``                   ``{"data": {"agentId"}}`` (stable)
=========================================================  =====================================

hub-sdk management calls: ``GET /v1/models`` (cursor paging: ``limit``, ``last_doc_id``),
``PATCH /v1/models/{id}``, ``GET /v1/models/{id}/metrics``, ``GET|POST /v1/datasets``,
``GET /v1/datasets/{id}``, ``POST /v1/datasets/{id}/upload``, ``GET|POST /v1/projects``,
``GET /v1/projects/{id}``, ``POST /v1/projects/{id}/upload`` (accepted and discarded).
Every API call needs a trainhub key (``x-api-key``, or ``Authorization: Bearer``), and sees
only its tenant's models, projects and datasets: the ``HubPrincipal`` dependency checks each
``{model_id}`` against the key (404 for another tenant's model, 403 for a model it may not
write), and :mod:`.service` checks the rest (see :mod:`trainhub.server.access`).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from trainhub.protocol import ErrorCode
from trainhub.server.compat import service as svc
from trainhub.server.compat.http import HubPrincipal, HubRoute, SignerDep, authenticate, read_json
from trainhub.server.compat.multipart import read_multipart
from trainhub.server.errors import ApiError
from trainhub.server.routes.deps import BaseUrl, ObjectsDep, SettingsDep, StoreDep
from trainhub.server.services import datasets as ds_svc
from trainhub.server.services import models as model_svc

__all__ = ["router"]

log = logging.getLogger("trainhub.server.compat")
router = APIRouter(prefix="/v1", route_class=HubRoute, tags=["compat: Ultralytics HUB"])

#: Seconds between the heartbeats of hub-sdk (ultralytics <= 8.4.114); liveness counts missed ones.
HUB_HEARTBEAT_INTERVAL = 300.0
Limit = Annotated[int, Query(ge=1, le=1000)]


def _ok(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


@router.post("/auth")
async def auth(request: Request) -> JSONResponse:
    """Check the key. Always JSON ``{"success": bool}`` (hub-sdk crashes on anything else)."""
    try:
        principal = await run_in_threadpool(authenticate, request)
    except Exception:  # the store is down, say: still a JSON answer the client can read
        log.exception("key check failed on /v1/auth")
        return JSONResponse({"success": False, "message": "the hub could not check the key"}, status_code=503)
    if principal is None:
        return JSONResponse({"success": False, "message": "Invalid API key"}, status_code=401)
    return JSONResponse({"success": True, "message": "Authenticated", "data": {"uid": principal.key_id}})


# --- models ----------------------------------------------------------------------------------


@router.get("/models")
def list_models(
    principal: HubPrincipal,
    store: StoreDep,
    signer: SignerDep,
    base: BaseUrl,
    limit: Limit = 10,
    last_doc_id: str | None = None,
) -> dict[str, Any]:
    """A page of model documents, newest first (``lastRecordId`` is the next cursor)."""
    return _ok(svc.hub_list_models(store, principal, signer, base, limit=limit, after_id=last_doc_id))


@router.post("/models")
async def create_model(
    request: Request, principal: HubPrincipal, store: StoreDep, base: BaseUrl
) -> dict[str, Any]:
    """Create a model from a HUB create payload; ``{"data": {"id"}}``."""
    payload = await read_json(request)
    model_id = await run_in_threadpool(svc.hub_create_model, store, principal, payload, base)
    return _ok({"id": model_id})


@router.get("/models/{model_id}")
def get_model(
    model_id: str, principal: HubPrincipal, store: StoreDep, signer: SignerDep, base: BaseUrl
) -> dict[str, Any]:
    """The model document (train args, weights/resume/dataset URLs, status)."""
    return _ok(svc.hub_get_model(store, principal, signer, base, model_id))


@router.post("/models/{model_id}")
async def post_metrics(model_id: str, request: Request, _: HubPrincipal, store: StoreDep) -> dict[str, Any]:
    """Metrics of one or more epochs (values are JSON strings, parsed leniently)."""
    body = await read_json(request)
    await run_in_threadpool(svc.hub_metrics, store, model_id, body)
    return {"success": True}


@router.patch("/models/{model_id}")
async def update_model(model_id: str, request: Request, _: HubPrincipal, store: StoreDep) -> dict[str, Any]:
    """Rename a model (``meta.name``)."""
    body = await read_json(request)
    await run_in_threadpool(svc.hub_update_model, store, model_id, body)
    return {"success": True}


@router.get("/models/{model_id}/metrics")
def get_metrics(model_id: str, _: HubPrincipal, store: StoreDep) -> dict[str, Any]:
    """Every epoch of the model: ``{"data": [{"epoch", "metrics"}, ...]}``."""
    return _ok(svc.hub_get_metrics(store, model_id))


@router.post("/models/{model_id}/upload")
async def upload_checkpoint(
    model_id: str,
    request: Request,
    _: HubPrincipal,
    store: StoreDep,
    objects: ObjectsDep,
    settings: SettingsDep,
) -> Any:
    """A multipart checkpoint: ``type=epoch`` (``last.pt``) or ``type=final`` (``best.pt``)."""
    await run_in_threadpool(model_svc.get_model, store, model_id, "")
    try:
        body = await read_multipart(request, objects, max_bytes=settings.max_checkpoint_bytes)
    except ClientDisconnect:
        log.info("client went away during a HUB upload of model %s; nothing kept", model_id)
        return JSONResponse({"success": False}, status_code=400)
    if body.file is None:
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "the upload has no file part")
    part = body.file
    saved = await run_in_threadpool(
        svc.hub_upload, store, model_id, body.fields, part.filename, part.head, part.blob
    )
    return _ok(
        {"kind": saved["kind"], "epoch": saved["epoch"], "sha256": saved["sha256"], "size": saved["size"]}
    )


@router.post("/agent/heartbeat/models/{model_id}")
async def heartbeat(model_id: str, request: Request, _: HubPrincipal, store: StoreDep) -> dict[str, Any]:
    """A heartbeat; the reply's ``agentId`` is stable per model. A finished model stays finished."""
    body = await read_json(request)
    agent = body.get("agent") if isinstance(body, dict) else None
    agent = agent if isinstance(agent, str) and agent.strip() else "unknown"
    # hub-sdk beats every 300 s: liveness must not call such a run stalled after the native 60 s.
    beat = await run_in_threadpool(
        model_svc.heartbeat, store, model_id, agent.strip()[:200], HUB_HEARTBEAT_INTERVAL
    )
    return _ok({"agentId": beat["agent_id"]})


# --- datasets --------------------------------------------------------------------------------


@router.get("/datasets")
def list_datasets(
    principal: HubPrincipal,
    store: StoreDep,
    signer: SignerDep,
    base: BaseUrl,
    limit: Limit = 10,
    last_doc_id: str | None = None,
) -> dict[str, Any]:
    """A page of datasets, newest first."""
    return _ok(svc.hub_list_datasets(store, principal, signer, base, limit=limit, after_id=last_doc_id))


@router.post("/datasets")
async def create_dataset(request: Request, principal: HubPrincipal, store: StoreDep) -> dict[str, Any]:
    """Create an empty dataset (``meta.name``) of the caller's user; ``{"data": {"id"}}``."""
    payload = await read_json(request)
    return _ok({"id": await run_in_threadpool(svc.hub_create_dataset, store, principal, payload)})


@router.get("/datasets/{dataset_id}")
def get_dataset(
    dataset_id: str, principal: HubPrincipal, store: StoreDep, signer: SignerDep, base: BaseUrl
) -> dict[str, Any]:
    """One dataset; ``url`` is a signed download link of its zip."""
    return _ok(svc.hub_get_dataset(store, principal, signer, base, dataset_id))


@router.post("/datasets/{dataset_id}/upload")
async def upload_dataset(
    dataset_id: str,
    request: Request,
    principal: HubPrincipal,
    store: StoreDep,
    objects: ObjectsDep,
    settings: SettingsDep,
    signer: SignerDep,
    base: BaseUrl,
) -> Any:
    """The dataset zip as a multipart file part (streamed, then checked to be a dataset zip)."""
    await run_in_threadpool(lambda: ds_svc.get_row(store, principal, dataset_id, write=True))
    try:
        body = await read_multipart(request, objects, max_bytes=settings.max_checkpoint_bytes)
    except ClientDisconnect:
        return JSONResponse({"success": False}, status_code=400)
    if body.file is None:
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "the upload has no file part")
    part = body.file
    await run_in_threadpool(
        ds_svc.attach_file, store, principal, objects, dataset_id, part.blob, part.filename or part.name
    )
    return _ok(await run_in_threadpool(svc.hub_get_dataset, store, principal, signer, base, dataset_id))


# --- projects --------------------------------------------------------------------------------


@router.get("/projects")
def list_projects(
    principal: HubPrincipal, store: StoreDep, limit: Limit = 10, last_doc_id: str | None = None
) -> dict[str, Any]:
    """A page of the projects the caller sees."""
    return _ok(svc.hub_list_projects(store, principal, limit=limit, after_id=last_doc_id))


@router.post("/projects")
async def create_project(request: Request, principal: HubPrincipal, store: StoreDep) -> dict[str, Any]:
    """Create a project of the caller's user (idempotent by ``meta.name``); ``{"data": {"id"}}``."""
    payload = await read_json(request)
    return _ok({"id": await run_in_threadpool(svc.hub_create_project, store, principal, payload)})


@router.get("/projects/{project_id}")
def get_project(project_id: str, principal: HubPrincipal, store: StoreDep) -> dict[str, Any]:
    """One project (by id or name)."""
    return _ok(svc.hub_get_project(store, principal, project_id))


@router.post("/projects/{project_id}/upload")
async def upload_project_image(
    project_id: str, request: Request, principal: HubPrincipal, store: StoreDep, settings: SettingsDep
) -> dict[str, Any]:
    """A project cover image: accepted and discarded (trainhub shows no project images)."""
    await run_in_threadpool(svc.hub_upload_project_image, store, principal, project_id)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > settings.max_checkpoint_bytes:
            raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, "upload too large")
    return {"success": True}
