"""HTTP plumbing shared by the compatibility routes: error shapes, keys, JSON bodies, the signer.

Each protocol gets errors in the shape its client handles (and never a redirect, never a trace):

* HUB: ``{"success": false, "message": ...}`` with the 4xx status. hub-sdk only looks at the
  status (any error -> ``None`` -> retried by ultralytics); ``/v1/auth`` is special-cased by its
  route so that it ALWAYS answers JSON ``{"success": bool}``.
* Platform: ``{"error": <message>, "code": <code>}``: ultralytics shows ``error`` when it
  resolves ``ul://`` URIs, and maps 401/403/404/408/429/5xx to its own exceptions.

Tenancy: the compat routes are not behind the ``/api/v1`` auth middleware, so their principal
comes from the :data:`HubPrincipal` / :data:`PlatformPrincipal` dependency (never from
``request.state``). That dependency also checks a ``{model_id}`` path parameter against the
principal (:func:`trainhub.server.access.check_model`: another tenant's model is 404, a model it
sees but may not write is 403), so no route with a model id can skip the check; other objects
(datasets, projects, models named in a body) are checked by :mod:`.service`.

The route classes turn :class:`~trainhub.server.errors.ApiError`, validation errors and
Starlette HTTP errors raised inside a compat route into those shapes; an unexpected exception is
logged and answered 500 in the same shape (a bug, never a stack trace).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from trainhub.protocol import ErrorCode
from trainhub.server import access
from trainhub.server.auth import Authenticator, Principal, key_from_headers
from trainhub.server.compat.convert import parse_json_lenient
from trainhub.server.compat.signing import UrlSigner, load_signer
from trainhub.server.errors import ApiError
from trainhub.server.store.engine import Store

__all__ = [
    "HubPrincipal",
    "HubRoute",
    "PlatformPrincipal",
    "PlatformRoute",
    "SignerDep",
    "authenticate",
    "hub_error",
    "platform_error",
    "read_json",
]

log = logging.getLogger("trainhub.server.compat")
_signer_lock = threading.Lock()

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def hub_error(status: int, message: str) -> JSONResponse:
    """A HUB-shaped error reply."""
    return JSONResponse({"success": False, "message": message}, status_code=status)


def platform_error(status: int, code: str, message: str) -> JSONResponse:
    """A Platform-shaped error reply."""
    return JSONResponse({"error": message, "code": str(code)}, status_code=status)


def _wrap(original: Handler, render: Callable[[int, str, str], JSONResponse]) -> Handler:
    async def handler(request: Request) -> Response:
        try:
            return await original(request)
        except ApiError as exc:
            return render(exc.status, str(exc.code), exc.message)
        except RequestValidationError as exc:
            return render(422, ErrorCode.VALIDATION_ERROR.value, str(exc.errors()[:3]))
        except StarletteHTTPException as exc:
            return render(exc.status_code, ErrorCode.VALIDATION_ERROR.value, str(exc.detail))
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return render(500, ErrorCode.INTERNAL_ERROR.value, "internal server error (logged on the server)")

    return handler


class HubRoute(APIRoute):
    """Route class of the HUB routes: errors as ``{"success": false, "message"}``."""

    def get_route_handler(self) -> Handler:
        return _wrap(super().get_route_handler(), lambda status, _code, msg: hub_error(status, msg))


class PlatformRoute(APIRoute):
    """Route class of the Platform routes: errors as ``{"error", "code"}``."""

    def get_route_handler(self) -> Handler:
        return _wrap(super().get_route_handler(), platform_error)


def authenticate(request: Request) -> Principal | None:
    """The principal of the request's key (``x-api-key`` or ``Authorization: Bearer``), if valid."""
    key = key_from_headers(request.headers)
    if not key:
        return None
    auth: Authenticator = request.app.state.authenticator
    return auth.authenticate_key(key)


def _require(request: Request) -> Principal:
    principal = authenticate(request)
    if principal is None:
        has_key = key_from_headers(request.headers) is not None
        raise ApiError(
            401, ErrorCode.UNAUTHORIZED, "Invalid API key" if has_key else "an API key is required"
        )
    if not principal.may(request.method):
        raise ApiError(403, ErrorCode.FORBIDDEN, "this API key is read-only")
    return principal


def _require_with_model(request: Request, principal: Annotated[Principal, Depends(_require)]) -> Principal:
    model_id = request.path_params.get("model_id")
    if model_id is not None:
        store: Store = request.app.state.store
        write = request.method.upper() not in access.READ_METHODS
        access.check_model(store, principal, str(model_id), write=write)
    return principal


def _signer(request: Request) -> UrlSigner:
    signer: UrlSigner | None = getattr(request.app.state, "compat_signer", None)
    if signer is None:
        with _signer_lock:
            signer = getattr(request.app.state, "compat_signer", None)
            if signer is None:
                store: Store = request.app.state.store
                signer = load_signer(store)
                request.app.state.compat_signer = signer
    return signer


async def read_json(request: Request) -> Any:
    """The request body as JSON, read leniently (``NaN``/``Infinity`` accepted).

    Raises:
        ApiError: 400 ``invalid_json``.
    """
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return await run_in_threadpool(parse_json_lenient, raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, ErrorCode.INVALID_JSON, f"request body is not valid JSON: {exc}") from exc


#: The caller of a compat route (401 without a valid key, 403 for a read-only key's writes), with
#: any ``{model_id}`` of the path checked against it (404 / 403, see the module docstring).
HubPrincipal = Annotated[Principal, Depends(_require_with_model)]
PlatformPrincipal = Annotated[Principal, Depends(_require_with_model)]
SignerDep = Annotated[UrlSigner, Depends(_signer)]
