"""The FastAPI application factory of the hub server.

``create_app(settings)`` wires: routes (thin) -> services -> store / objects. The lifespan
migrates and opens the store, opens the object store, and closes both on shutdown.
Middleware (outermost first): security headers on every reply (``headers.py``), per-key rate
limit on ``/api/v1`` (429 + Retry-After, see ``ratelimit.py``), API-key check on ``/api/v1``, then
the JSON body cap and screen (``limits.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from trainhub import __version__
from trainhub.protocol import API_PREFIX
from trainhub.server.access import model_guard
from trainhub.server.auth import ApiAuthMiddleware, Authenticator
from trainhub.server.backends import open_objects, open_store
from trainhub.server.compat import routers as compat_routers
from trainhub.server.errors import install_error_handlers
from trainhub.server.headers import SecurityHeadersMiddleware
from trainhub.server.limits import JsonBodyLimitMiddleware
from trainhub.server.ratelimit import RateLimiter, RateLimitMiddleware
from trainhub.server.routes import (
    charts,
    checkpoints,
    datasets,
    events,
    keys,
    metrics,
    models,
    pages,
    uploads,
    users,
)
from trainhub.server.schemas import RAW_BODY_MODELS
from trainhub.server.services.models import LIVENESS
from trainhub.server.services.uploads import expire_uploads
from trainhub.server.settings import ServerSettings
from trainhub.web import STATIC_DIR

__all__ = ["create_app"]


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the hub app.

    Args:
        settings: server settings (default: from ``TRAINHUB_*`` environment variables).

    Returns:
        The FastAPI app; its lifespan applies migrations, so it is ready once started.

    Raises:
        ConfigError: a database or storage URL has an unknown scheme.
    """
    settings = settings or ServerSettings()
    LIVENESS.crash_timeout = settings.crash_timeout  # read-time status (services/models.py)
    # Creating the engine does not connect; the lifespan migrates (and so first connects).
    store = open_store(settings.database_url)
    authenticator = Authenticator(store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(store.migrate)
        objects = await run_in_threadpool(open_objects, settings.storage_url, settings.storage_options())
        await run_in_threadpool(expire_uploads, store, objects)  # sessions that expired while down
        app.state.objects = objects
        try:
            yield
        finally:
            objects.close()
            store.close()

    app = FastAPI(
        title="trainhub",
        version=__version__,
        summary="A self-hosted training hub: metrics, checkpoints and heartbeats of training runs.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.authenticator = authenticator

    install_error_handlers(app)
    # add_middleware prepends: the last added runs first: rate limit, then auth, then the body cap.
    app.add_middleware(JsonBodyLimitMiddleware)
    app.add_middleware(ApiAuthMiddleware, authenticator=authenticator)
    limiter = RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst)
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: on every reply, errors included

    # Every native route with a {model_id} is checked against the caller's projects (access.py).
    for module in (models, metrics, checkpoints, uploads, events, keys, users, charts, datasets):
        app.include_router(module.router, prefix=API_PREFIX, dependencies=[Depends(model_guard)])
    for router in compat_routers():  # Ultralytics HUB (/v1) and Platform (/api) protocols
        app.include_router(router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    _document_errors(app)
    return app


_ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def _document_errors(app: FastAPI) -> None:
    """Make the OpenAPI schema describe the 422 replies the server really sends.

    FastAPI documents ``{"detail": [...]}``; the native API answers ``{"error": {"code",
    "message"}}`` (``errors.py``) and the compatibility APIs answer in their clients' shapes
    (``compat/http.py``), so those are documented as any JSON object.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["ErrorBody"] = _ERROR_BODY
            # Bodies a route parses itself (``routes/metrics.py``) but documents by reference.
            for model in RAW_BODY_MODELS:
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in body.pop("$defs", {}).items():
                    schemas.setdefault(name, sub)
                schemas[model.__name__] = body
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            for path, operations in schema.get("paths", {}).items():
                native = path.startswith(API_PREFIX + "/")
                for operation in operations.values():
                    reply = operation.get("responses", {}).get("422")
                    if reply is None:
                        continue
                    body = {"$ref": "#/components/schemas/ErrorBody"} if native else {"type": "object"}
                    reply["content"] = {"application/json": {"schema": body}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
