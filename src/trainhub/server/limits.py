"""Request-size limits the server speaks (the client obeys the same numbers from ``protocol``).

JSON bodies are capped at :data:`~trainhub.protocol.MAX_JSON_BODY_BYTES`: by Content-Length
before anything is read, and by counting while reading (for chunked bodies). Checkpoint uploads
are exempt here; their route enforces ``max_checkpoint_bytes`` while streaming.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainhub.protocol import API_PREFIX, MAX_JSON_BODY_BYTES, ErrorCode
from trainhub.server.errors import error_response

__all__ = ["BodyTooLarge", "JsonBodyLimitMiddleware"]

_UPLOAD_PATH = re.compile(rf"^{re.escape(API_PREFIX)}/models/[^/]+/checkpoints/[^/]+/?$")
#: Other streamed uploads (their routes cap the size while streaming): dataset zips, checkpoint
#: upload parts (their session fixes each part's size), and the
#: Ultralytics compatibility uploads (HUB multipart checkpoints and files, Platform signed PUTs).
_STREAMED_PATHS = re.compile(
    rf"^(?:{re.escape(API_PREFIX)}/datasets/[^/]+/file"
    rf"|{re.escape(API_PREFIX)}/models/[^/]+/uploads/[^/]+/parts/[^/]+"
    r"|/v1/(?:models|datasets|projects)/[^/]+/upload"
    r"|/up/.+)/?$"
)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body passes the cap.

    An HTTPException on purpose: FastAPI re-raises those from body parsing (other exceptions
    become a generic 400), so the JSON error handler renders it as 413 ``payload_too_large``.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class JsonBodyLimitMiddleware:
    """Caps request bodies, except checkpoint uploads."""

    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            (scope.get("method") == "PUT" and _UPLOAD_PATH.match(scope["path"]))
            or (scope.get("method") in ("PUT", "POST") and _STREAMED_PATHS.match(scope["path"]))
        ):
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            response = error_response(
                413, ErrorCode.PAYLOAD_TOO_LARGE, f"request body larger than {self.limit} bytes"
            )
            await response(scope, receive, send)
            return
        seen = 0
        limit = self.limit

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)
