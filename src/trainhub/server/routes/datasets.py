"""Routes of datasets (native API): create, list, get, upload the zip (streamed), download.

A caller sees the datasets of its user and of the user's teams (all of them for an admin user);
another tenant's dataset answers 404 like an unknown one (``services/datasets.py``, ``access.py``).
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from trainhub.protocol import HEADER_SHA256, MAX_NAME_LENGTH, ErrorCode
from trainhub.server.downloads import blob_response
from trainhub.server.errors import ApiError
from trainhub.server.routes.deps import ObjectsDep, PrincipalDep, SettingsDep, StoreDep
from trainhub.server.services import checkpoints as blob_svc
from trainhub.server.services import datasets as svc

__all__ = ["router"]

log = logging.getLogger("trainhub.server")
router = APIRouter(tags=["datasets"])
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_BINARY = {"schema": {"type": "string", "format": "binary"}}


class DatasetCreateIn(BaseModel):
    """Body of ``POST /datasets``."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
    task: Annotated[str | None, Field(max_length=MAX_NAME_LENGTH)] = None


@router.get("/datasets")
def list_datasets(
    store: StoreDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> list[dict[str, Any]]:
    """The datasets the caller sees, newest first (``after=<id>`` continues a listing)."""
    rows, _ = svc.list_datasets(store, principal, limit=limit, after_id=after)
    return rows


@router.post("/datasets", status_code=201)
def create_dataset(body: DatasetCreateIn, store: StoreDep, principal: PrincipalDep) -> dict[str, Any]:
    """Create an empty dataset owned by the caller; upload its zip with ``PUT /datasets/{id}/file``."""
    return svc.create_dataset(store, principal, body.name, body.task)


@router.get("/datasets/{dataset_id}")
def get_dataset(dataset_id: str, store: StoreDep, principal: PrincipalDep) -> dict[str, Any]:
    """One dataset."""
    return svc.get_dataset(store, principal, dataset_id)


@router.put(
    "/datasets/{dataset_id}/file",
    openapi_extra={"requestBody": {"required": True, "content": {"application/zip": _BINARY}}},
)
async def upload_dataset_file(
    request: Request,
    dataset_id: str,
    store: StoreDep,
    principal: PrincipalDep,
    objects: ObjectsDep,
    settings: SettingsDep,
    filename: Annotated[str, Query(min_length=1, max_length=255)] = "dataset.zip",
) -> Any:
    """Upload the dataset zip as the raw body (streamed; Content-Length required, optional sha256 header).

    The zip must hold a ``*.yaml`` (Ultralytics' dataset description); leave ``path:`` out of it.
    """
    raw = request.headers.get("content-length")
    if raw is None:
        raise ApiError(411, ErrorCode.LENGTH_REQUIRED, "dataset uploads need a Content-Length header")
    if not raw.isdigit():
        raise ApiError(400, ErrorCode.VALIDATION_ERROR, "Content-Length must be a non-negative integer")
    if int(raw) > settings.max_checkpoint_bytes:
        raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, f"larger than {settings.max_checkpoint_bytes} bytes")
    sha = request.headers.get(HEADER_SHA256)
    if sha is not None and not _SHA_RE.match(sha.strip().lower()):
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, f"{HEADER_SHA256}: must be 64 hex characters")
    await run_in_threadpool(lambda: svc.get_row(store, principal, dataset_id, write=True))
    try:
        blob = await blob_svc.receive_blob(
            objects,
            request.stream(),
            expected_size=int(raw),
            expected_sha256=sha.strip().lower() if sha else None,
            max_bytes=settings.max_checkpoint_bytes,
        )
    except ClientDisconnect:
        log.info("client went away during the upload of dataset %s; nothing kept", dataset_id)
        return Response(status_code=400)
    return await run_in_threadpool(svc.attach_file, store, principal, objects, dataset_id, blob, filename)


@router.get("/datasets/{dataset_id}/download", response_class=FileResponse)
def download_dataset(
    dataset_id: str, store: StoreDep, principal: PrincipalDep, objects: ObjectsDep, settings: SettingsDep
) -> Response:
    """The dataset zip (streamed, or a 307 to a presigned storage URL)."""
    row = svc.get_row(store, principal, dataset_id)
    response = None
    if row["sha256"]:
        response = blob_response(
            objects,
            row["sha256"],
            filename=row["filename"] or "dataset.zip",
            media_type="application/zip",
            redirect=settings.redirect_downloads,
        )
    if response is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"dataset {dataset_id!r} has no file")
    return response
