"""Errors of the hub server and the handlers that turn every failure into JSON.

Exception tree::

    Exception
     +-- ConfigError (ValueError)   bad settings / unknown backend scheme; raised before serving
     +-- ApiError                   an error reply: status, stable ErrorCode, human message
          (services raise it; the handlers below render ``{"error": {"code", "message"}}``)

Third-party failures are mapped at the boundary: Starlette's HTTPException (unknown route,
method not allowed, body too large) and FastAPI's RequestValidationError (bad JSON, wrong
types) get the same JSON shape; anything else is a bug and becomes a 500 ``internal_error``
whose trace goes to the log, never to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from trainhub.protocol import ErrorCode

__all__ = ["ApiError", "ConfigError", "error_response", "install_error_handlers"]

log = logging.getLogger("trainhub.server")


class ConfigError(ValueError):
    """A setting is invalid (for example a database URL with an unknown scheme)."""


class ApiError(Exception):
    """An error reply of the API.

    Args:
        status: HTTP status (4xx for bad input).
        code: stable machine-readable code from :class:`trainhub.protocol.ErrorCode`.
        message: human-readable explanation.
    """

    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON reply ``{"error": {"code", "message"}}``."""
    body = {"error": {"code": str(code), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


_STATUS_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.VALIDATION_ERROR,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    411: ErrorCode.LENGTH_REQUIRED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
}


def _loc(loc: Sequence[Any]) -> str:
    # Drop the "body"/"query"/"path" root so messages name the field as the client wrote it.
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_message(errors: Sequence[Any]) -> str:
    shown = [f"{_loc(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(shown) + more


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, ErrorCode.VALIDATION_ERROR)
    if exc.status_code == 404:
        message = "no such route"
    elif exc.status_code == 405:
        message = "method not allowed on this route"
    else:
        message = str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code >= 500:
        code = ErrorCode.INTERNAL_ERROR
    return error_response(exc.status_code, code, message, headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for e in errors:
        if e.get("type") == "json_invalid":
            detail = (e.get("ctx") or {}).get("error", "malformed JSON")
            return error_response(400, ErrorCode.INVALID_JSON, f"request body is not valid JSON: {detail}")
    return error_response(422, ErrorCode.VALIDATION_ERROR, _validation_message(errors))


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, ErrorCode.INTERNAL_ERROR, "internal server error (logged on the server)")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every failure the JSON error shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
