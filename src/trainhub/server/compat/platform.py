"""The Ultralytics Platform protocol (ultralytics >= 8.4.115 with ultralytics-platform), under ``/api``.

=========================================================  =====================================
``GET  /api/account/summary``                              ``yolo login`` key check
``POST /api/webhooks/training/metrics``                    the five training events (below)
``POST /api/webhooks/models/upload``                       ``{"uploadUrl", "gcsPath", ...}``
``GET  /api/models/{owner}/{project}/{model}/files``        weights of ``ul://owner/project/model``
=========================================================  =====================================

Events: ``training_started`` (creates or continues a model; ``modelId``/``runId`` in the reply),
``epoch_end`` (metrics; the final evaluation becomes the final metrics), ``console_output``
(dropped after the key check: it is high-volume log text with ANSI codes and timestamps),
``checkpoint_saved`` (promotes a staged upload), ``training_complete`` (final metrics, final
checkpoint, status). Replies carry ``cancelled: true`` once a stop was requested in trainhub
(``POST /api/v1/models/{id}/stop``), which stops the trainer at its next batch. Every reply is a
JSON object (the SDK treats anything else as a failure); keys go as ``Authorization: Bearer``.

Tenancy: a key only reaches the models of its tenant (:mod:`trainhub.server.access`). An event or
upload naming another tenant's ``modelId`` (or a project + name it does not see) answers 404
``model_not_found``; one it sees but may not write, 403; new models go to a project the key may
write to (its user's default project when none is named). The weights of ``ul://`` URIs are
listed only for models the key sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from trainhub import __version__
from trainhub.protocol import ErrorCode, ModelStatus
from trainhub.server import access
from trainhub.server.auth import Principal
from trainhub.server.compat import service as svc
from trainhub.server.compat.http import PlatformPrincipal, PlatformRoute, SignerDep, read_json
from trainhub.server.errors import ApiError
from trainhub.server.routes.deps import BaseUrl, StoreDep
from trainhub.server.store.engine import Store

__all__ = ["router"]

router = APIRouter(prefix="/api", route_class=PlatformRoute, tags=["compat: Ultralytics Platform"])

_EVENTS = frozenset(
    {
        "training_started",
        "training_progress",
        "epoch_end",
        "system_metrics",
        "console_output",
        "checkpoint_saved",
        "training_complete",
        "training_failed",
    }
)


@router.get("/account/summary")
def account_summary(principal: PlatformPrincipal) -> dict[str, Any]:
    """Who the key belongs to (``yolo login`` saves the key on any 2xx): its user."""
    return {
        "username": principal.user_name or principal.name or principal.key_id,
        "keyName": principal.name,
        "keyId": principal.key_id,
        "isAdmin": principal.is_admin,
        "server": "trainhub",
        "version": __version__,
    }


def _reply(event: str, model: Mapping[str, Any] | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"received": True, "event": event}
    if model is not None:
        reply["modelId"] = model["id"]
        if model["stop_requested"]:
            reply["cancelled"] = True
    return reply


def _handle_event(
    store: Store, principal: Principal, body: Mapping[str, Any], event: str, base: str
) -> dict[str, Any]:
    if event == "training_started":
        return svc.platform_training_started(store, principal, body, base)
    if event == "epoch_end":
        return _reply(event, svc.platform_epoch_end(store, principal, body))
    if event == "checkpoint_saved":
        return _reply(event, svc.platform_checkpoint_saved(store, principal, body))
    if event == "training_complete":
        return _reply(event, svc.platform_complete(store, principal, body))
    model = svc.model_for_event(store, principal, body)
    if event == "training_failed" and model["status"] not in svc.FINISHED_STATUSES:
        from trainhub.server.schemas import StatusUpdateIn
        from trainhub.server.services import models as model_svc

        model_svc.update_status(store, str(model["id"]), StatusUpdateIn(status=ModelStatus.FAILED), base)
    return _reply(event, model)


@router.post("/webhooks/training/metrics")
async def training_event(
    request: Request, principal: PlatformPrincipal, store: StoreDep, base: BaseUrl
) -> dict[str, Any]:
    """One training event (see the module docstring)."""
    body = await read_json(request)
    if not isinstance(body, Mapping):
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "expected a JSON object")
    event = body.get("event")
    if event not in _EVENTS:
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, f"unknown event {event!r}")
    if event == "console_output":
        # Cheap on purpose: no write per log chunk, only the key and the model's access are
        # checked (one read; none for an admin user): the text is dropped.
        model_id = body.get("modelId")
        if isinstance(model_id, str) and model_id:
            await run_in_threadpool(lambda: access.check_model(store, principal, model_id, write=True))
        return {"received": True, "event": event}
    return await run_in_threadpool(_handle_event, store, principal, body, str(event), base)


@router.post("/webhooks/models/upload")
async def upload_url(
    request: Request, principal: PlatformPrincipal, store: StoreDep, signer: SignerDep, base: BaseUrl
) -> dict[str, Any]:
    """Stage a checkpoint upload; the reply's ``uploadUrl`` takes one signed PUT of the file."""
    body = await read_json(request)
    if not isinstance(body, Mapping):
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "expected a JSON object")
    return await run_in_threadpool(svc.platform_stage_upload, store, principal, signer, base, body)


@router.get("/models/{owner}/{project}/{model}/files")
def model_files(
    owner: str,
    project: str,
    model: str,
    principal: PlatformPrincipal,
    store: StoreDep,
    signer: SignerDep,
    base: BaseUrl,
) -> dict[str, Any]:
    """The model's weight files, the trained (final/best) weights first."""
    return {"files": svc.platform_files(store, principal, signer, base, owner, project, model)}
