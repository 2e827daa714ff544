"""Routes of chunked checkpoint uploads: create, status, parts, complete, abort (see
:mod:`trainhub.server.services.uploads` for the rules)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from trainhub.protocol import (
    DEFAULT_PART_SIZE,
    MAX_EPOCH,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    CheckpointKind,
    ErrorCode,
)
from trainhub.server.errors import ApiError
from trainhub.server.routes.deps import ObjectsDep, SettingsDep, StoreDep
from trainhub.server.schemas import finite_or_none
from trainhub.server.services import uploads as svc

__all__ = ["UploadCreateIn", "router"]

log = logging.getLogger("trainhub.server")
router = APIRouter(tags=["uploads"])
_BINARY = {"schema": {"type": "string", "format": "binary"}}


class UploadCreateIn(BaseModel):
    """Body of ``POST /models/{id}/uploads`` (:class:`trainhub.protocol.UploadCreate`)."""

    model_config = ConfigDict(extra="ignore")

    kind: CheckpointKind
    size: int = Field(ge=1, strict=True)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    part_size: int = Field(default=DEFAULT_PART_SIZE, ge=MIN_PART_SIZE, le=MAX_PART_SIZE, strict=True)
    epoch: int | None = Field(default=None, ge=0, le=MAX_EPOCH, strict=True)
    is_best: bool = False
    map: float | None = None


def _content_length(request: Request) -> int:
    raw = request.headers.get("content-length")
    if raw is None:
        raise ApiError(411, ErrorCode.LENGTH_REQUIRED, "parts need a Content-Length header")
    if not raw.isdigit():
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "Content-Length must be a non-negative integer")
    return int(raw)


@router.post("/models/{model_id}/uploads", status_code=201)
def create_upload(
    model_id: str,
    body: UploadCreateIn,
    response: Response,
    store: StoreDep,
    objects: ObjectsDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Start a chunked upload (201), or: 200 with ``already_present`` (the content is stored already,
    the checkpoint is recorded, nothing to send), or 200 with the parts of an open session of the
    same file (resume)."""
    status, out = svc.create_upload(
        store,
        objects,
        model_id,
        kind=body.kind,
        size=body.size,
        sha256=body.sha256,
        part_size=body.part_size,
        epoch=body.epoch,
        is_best=body.is_best,
        map_value=finite_or_none(body.map),
        max_bytes=settings.max_checkpoint_bytes,
    )
    response.status_code = status
    return out


@router.get("/models/{model_id}/uploads/{upload_id}")
def get_upload(model_id: str, upload_id: str, store: StoreDep, objects: ObjectsDep) -> dict[str, Any]:
    """A session and the numbers of the parts the server has."""
    return svc.get_upload(store, objects, model_id, upload_id)


@router.put(
    "/models/{model_id}/uploads/{upload_id}/parts/{number}",
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": _BINARY}}},
)
async def put_part(
    request: Request, model_id: str, upload_id: str, number: int, store: StoreDep, objects: ObjectsDep
) -> Any:
    """Part ``number`` (1-based) as the raw body, with Content-Length; a re-sent part replaces."""
    length = _content_length(request)
    try:
        return await svc.put_part(store, objects, model_id, upload_id, number, length, request.stream())
    except ClientDisconnect:
        log.info("client went away during part %d of upload %s; the part is not kept", number, upload_id)
        return Response(status_code=400)


@router.post("/models/{model_id}/uploads/{upload_id}/complete")
async def complete_upload(model_id: str, upload_id: str, store: StoreDep, objects: ObjectsDep) -> Any:
    """Check every part, the total size and sha256, then make the checkpoint visible."""
    return await run_in_threadpool(svc.complete_upload, store, objects, model_id, upload_id)


@router.delete("/models/{model_id}/uploads/{upload_id}", status_code=204)
def abort_upload(model_id: str, upload_id: str, store: StoreDep, objects: ObjectsDep) -> Response:
    """Abort the session and delete its parts."""
    svc.abort_upload(store, objects, model_id, upload_id)
    return Response(status_code=204)
