"""Signed file routes (no key: the URL is the credential; see :mod:`.signing`).

* ``GET|HEAD /dl/<exp>/<sig>/<sha256>/<ident>/<filename>``: a stored blob (weights, resume
  checkpoints, dataset zips) with Content-Length, which the clients compare with what they got;
* ``PUT /up/<exp>/<sig>/<upload id>/<filename>``: the raw body of a staged Platform upload,
  streamed into a blob (Content-Length required).

A bad or expired signature is 403, an unknown blob 404; replies are Platform-shaped JSON, which
the clients only read for the status (``requests`` PUT/GET).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from trainhub.protocol import ErrorCode
from trainhub.server.compat import service as svc
from trainhub.server.compat.http import PlatformRoute, SignerDep
from trainhub.server.downloads import blob_response
from trainhub.server.errors import ApiError
from trainhub.server.routes.deps import ObjectsDep, SettingsDep, StoreDep
from trainhub.server.services import checkpoints as ckpt_svc

__all__ = ["router"]

log = logging.getLogger("trainhub.server.compat")
router = APIRouter(route_class=PlatformRoute, include_in_schema=False)
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def _forbidden() -> ApiError:
    return ApiError(403, ErrorCode.FORBIDDEN, "invalid or expired signed URL")


@router.api_route("/dl/{exp}/{sig}/{sha256}/{ident}/{filename}", methods=["GET", "HEAD"])
def download(
    request: Request,
    exp: str,
    sig: str,
    sha256: str,
    ident: str,
    filename: str,
    signer: SignerDep,
    objects: ObjectsDep,
    settings: SettingsDep,
) -> Response:
    """A signed blob download (streamed, or a 307 to a presigned storage URL)."""
    if not _SHA_RE.match(sha256) or not signer.verify("GET", exp, sig, (sha256, ident, filename)):
        raise _forbidden()
    media = "application/zip" if filename.endswith(".zip") else "application/octet-stream"
    response = blob_response(
        objects,
        sha256,
        filename=filename,
        media_type=media,
        redirect=settings.redirect_downloads,
        head=request.method == "HEAD",
    )
    if response is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "the file is missing on the server")
    return response


@router.put("/up/{exp}/{sig}/{upload_id}/{filename}")
async def upload(
    exp: str,
    sig: str,
    upload_id: str,
    filename: str,
    request: Request,
    signer: SignerDep,
    store: StoreDep,
    objects: ObjectsDep,
    settings: SettingsDep,
) -> Any:
    """The signed PUT of a staged Platform checkpoint upload (streamed, size-checked)."""
    if not signer.verify("PUT", exp, sig, (upload_id, filename)):
        raise _forbidden()
    raw = request.headers.get("content-length")
    if raw is None or not raw.isdigit():
        raise ApiError(411, ErrorCode.LENGTH_REQUIRED, "uploads need a Content-Length header")
    if int(raw) > settings.max_checkpoint_bytes:
        raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, f"larger than {settings.max_checkpoint_bytes} bytes")
    try:
        blob = await ckpt_svc.receive_blob(
            objects,
            request.stream(),
            expected_size=int(raw),
            expected_sha256=None,
            max_bytes=settings.max_checkpoint_bytes,
        )
    except ClientDisconnect:
        log.info("client went away during the PUT of upload %s; nothing kept", upload_id)
        return Response(status_code=400)
    await run_in_threadpool(svc.platform_receive_put, store, upload_id, filename, blob)
    return JSONResponse({"received": True, "size": blob.size, "sha256": blob.sha256})
