"""One answer for every file download, whatever the storage backend.

* a blob on a local filesystem: :class:`FileResponse` (sendfile, Range and HEAD handled by Starlette);
* a blob in S3 with ``redirect_downloads`` on: 307 to a presigned URL (the bytes skip the hub);
* a blob in S3 otherwise: streamed through the hub in 1 MiB chunks, with Content-Length (memory
  stays flat: the body is iterated in a worker thread, one chunk at a time).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from trainhub.server.objects import ObjectStore

__all__ = ["PRESIGNED_URL_SECONDS", "blob_response"]

log = logging.getLogger("trainhub.server")
#: Lifetime of a presigned download URL: long enough to start a slow download, short enough to leak little.
PRESIGNED_URL_SECONDS = 900


def _disposition(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=utf-8''{quote(filename)}"


def blob_response(
    objects: ObjectStore,
    sha256: str,
    *,
    filename: str,
    media_type: str = "application/octet-stream",
    redirect: bool = False,
    head: bool = False,
) -> Response | None:
    """The response serving blob ``sha256`` as ``filename``; None if the blob is missing.

    Call it from a sync route (it may do blocking storage calls).
    """
    path = objects.local_path(sha256)
    if path is not None:
        return FileResponse(path, media_type=media_type, filename=filename)
    size = objects.size(sha256)
    if size is None:
        return None
    if redirect:
        url = objects.presigned_url(sha256, filename, PRESIGNED_URL_SECONDS)
        if url is not None:
            return RedirectResponse(url, status_code=307)
    headers = {"content-length": str(size), "content-disposition": _disposition(filename)}
    if head:
        return Response(headers=headers, media_type=media_type)
    try:
        chunks = objects.iter_blob(sha256)
    except FileNotFoundError:
        return None
    return StreamingResponse(chunks, headers=headers, media_type=media_type)
