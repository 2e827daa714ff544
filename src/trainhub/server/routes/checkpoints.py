"""Routes of checkpoints: streaming upload, list, download."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from trainhub.protocol import HEADER_SHA256, MAX_EPOCH, CheckpointKind, ErrorCode
from trainhub.server.downloads import blob_response
from trainhub.server.errors import ApiError
from trainhub.server.routes.deps import ObjectsDep, SettingsDep, StoreDep
from trainhub.server.schemas import CheckpointOutSchema, finite_or_none
from trainhub.server.services import checkpoints as svc
from trainhub.server.services import models as model_svc

__all__ = ["router"]

log = logging.getLogger("trainhub.server")
router = APIRouter(tags=["checkpoints"])
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _content_length(request: Request, max_bytes: int) -> int:
    raw = request.headers.get("content-length")
    if raw is None:
        raise ApiError(411, ErrorCode.LENGTH_REQUIRED, "checkpoint uploads need a Content-Length header")
    if not raw.isdigit():
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "Content-Length must be a non-negative integer")
    length = int(raw)
    if length > max_bytes:
        raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, f"checkpoint larger than {max_bytes} bytes")
    return length


@router.put(
    "/models/{model_id}/checkpoints/{kind}",
    status_code=201,
    response_model=CheckpointOutSchema,
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": _BINARY}}},
)
async def upload_checkpoint(
    request: Request,
    model_id: str,
    kind: CheckpointKind,
    store: StoreDep,
    objects: ObjectsDep,
    settings: SettingsDep,
    epoch: Annotated[int | None, Query(ge=0, le=MAX_EPOCH)] = None,
    is_best: bool = False,
    map: Annotated[float | None, Query()] = None,
) -> Any:
    """Upload a checkpoint as the raw request body (streamed, never held in memory).

    Needs Content-Length (411 otherwise); the optional ``x-trainhub-sha256`` header is checked
    against the body. The checkpoint becomes visible only after both checks pass.
    """
    sha = request.headers.get(HEADER_SHA256)
    if sha is not None:
        sha = sha.strip().lower()
        if not _SHA_RE.match(sha):
            raise ApiError(422, ErrorCode.VALIDATION_ERROR, f"{HEADER_SHA256}: must be 64 hex characters")
    length = _content_length(request, settings.max_checkpoint_bytes)
    # Fail fast on an unknown model before reading a possibly large body.
    await run_in_threadpool(model_svc.get_model, store, model_id, "")
    try:
        blob = await svc.receive_blob(
            objects,
            request.stream(),
            expected_size=length,
            expected_sha256=sha,
            max_bytes=settings.max_checkpoint_bytes,
        )
    except ClientDisconnect:
        log.info("client went away during the %s upload of model %s; nothing kept", kind.value, model_id)
        return Response(status_code=400)
    return await run_in_threadpool(
        svc.record_checkpoint,
        store,
        model_id,
        kind,
        blob,
        epoch=epoch,
        is_best=is_best,
        map_value=finite_or_none(map),
    )


@router.get("/models/{model_id}/checkpoints", response_model=list[CheckpointOutSchema])
def list_checkpoints(model_id: str, store: StoreDep) -> list[dict[str, Any]]:
    """A model's checkpoint slots."""
    return svc.list_checkpoints(store, model_id)


@router.get(
    "/models/{model_id}/checkpoints/{kind}/download",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_checkpoint(
    model_id: str, kind: CheckpointKind, store: StoreDep, objects: ObjectsDep, settings: SettingsDep
) -> Response:
    """The checkpoint file, as ``<model_id>-<kind>.pt`` (or a 307 to a presigned storage URL)."""
    row = svc.get_checkpoint(store, model_id, kind.value)
    response = blob_response(
        objects, row["sha256"], filename=f"{model_id}-{kind.value}.pt", redirect=settings.redirect_downloads
    )
    if response is None:
        log.warning("blob %s of checkpoint %s/%s is missing", row["sha256"], model_id, kind.value)
        raise ApiError(404, ErrorCode.CHECKPOINT_NOT_FOUND, "the checkpoint's file is missing on the server")
    return response
