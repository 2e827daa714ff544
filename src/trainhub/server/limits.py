"""Request-size limits the server speaks (the client obeys the same numbers from ``protocol``).

JSON bodies are capped at :data:`~trainhub.protocol.MAX_JSON_BODY_BYTES`: by Content-Length
before anything is read, and by counting while reading (for chunked bodies). Checkpoint uploads
are exempt here; their route enforces ``max_checkpoint_bytes`` while streaming.

A body sent as JSON (``application/json`` or ``application/*+json``) is read whole (it is capped)
and screened by :func:`json_body_problem` before any route sees it: it must be UTF-8, nested at
most :data:`~trainhub.protocol.MAX_JSON_DEPTH` deep, and hold no NUL character or lone UTF-16
surrogate in any string (neither can be stored: PostgreSQL refuses NUL in text, and a lone
surrogate cannot be encoded as UTF-8). Each is a 400 ``invalid_json`` before anything is stored.
Malformed JSON is left to the route's own parser (also 400 ``invalid_json``). A NUL character
in the URL's path or query is a 400 ``validation_error`` on every route.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainhub.protocol import API_PREFIX, MAX_JSON_BODY_BYTES, MAX_JSON_DEPTH, ErrorCode
from trainhub.server.errors import error_response

__all__ = ["BodyTooLarge", "JsonBodyLimitMiddleware", "json_body_problem"]

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


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _max_depth(text: str, escapes: bool = True) -> int:
    # Brackets inside strings do not nest; drop the strings, then keep only the brackets.
    # Without a backslash there is no escaped quote: the text between quotes alternates
    # outside/inside a string (about 10x faster than the regex on a 1,000-point metrics body).
    outside = _JSON_STRING.sub("", text) if escapes else "".join(text.split('"')[0::2])
    brackets = _NOT_BRACKET.sub("", outside)
    if not brackets:
        return 0
    return max(accumulate(1 if ch in "[{" else -1 for ch in brackets))


def _unstorable_string(value: Any) -> bool:
    # Iterative walk: the depth is already bounded, but a stack costs nothing and cannot overflow.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def json_body_problem(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a JSON request body must be refused before parsing, or None if it may go on.

    Args:
        body: the whole request body.
        max_depth: deepest nesting of arrays and objects allowed.

    Returns:
        A message for a 400 ``invalid_json`` reply, or None (malformed JSON also gives None: the
        route's parser reports it with its position).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"request body is not valid UTF-8 (byte {exc.start})"
    escapes = "\\" in text
    depth = _max_depth(text, escapes)
    if depth > max_depth:
        return f"request body nests JSON {depth} levels deep; at most {max_depth} are allowed"
    if not escapes:
        # Without a backslash no string can hold an escaped NUL or surrogate; a raw NUL is not
        # valid JSON and a raw surrogate not valid UTF-8. So the common body (metrics) is not
        # parsed twice: only the route parses it.
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if _unstorable_string(value):
        return "request body holds a NUL character or a lone UTF-16 surrogate in a string"
    return None


def _rejection(path: str, message: str, code: ErrorCode = ErrorCode.INVALID_JSON) -> JSONResponse:
    """A 400 in the error shape of the path's protocol (see ``compat/http.py``)."""
    if path.startswith("/v1/"):
        return JSONResponse({"success": False, "message": message}, status_code=400)
    if path.startswith("/api/") and not path.startswith(API_PREFIX + "/"):
        return JSONResponse({"error": message, "code": str(code)}, status_code=400)
    return error_response(400, code, message)


def _nul_in_url(scope: Scope) -> bool:
    # PostgreSQL refuses NUL in text, so a NUL in a path or query value could never match a row:
    # refuse it up front instead of letting the database raise.
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query


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
        if scope["type"] == "http" and _nul_in_url(scope):
            response = _rejection(scope["path"], "the URL holds a NUL character", ErrorCode.VALIDATION_ERROR)
            await response(scope, receive, send)
            return
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
        if scope.get("method") in ("POST", "PUT", "PATCH") and _is_json(
            Headers(scope=scope).get("content-type", "")
        ):
            await self._screened(scope, receive, send)
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

    async def _screened(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the whole (capped) JSON body, screen it, then replay it to the app."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                response = error_response(
                    413, ErrorCode.PAYLOAD_TOO_LARGE, f"request body larger than {self.limit} bytes"
                )
                await response(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = json_body_problem(body)
        if problem is not None:
            await _rejection(scope["path"], problem)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
