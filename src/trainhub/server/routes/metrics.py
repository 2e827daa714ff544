"""Routes of metrics."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from trainhub.protocol import MAX_NAME_LENGTH
from trainhub.server.routes.deps import StoreDep
from trainhub.server.schemas import MetricsBatchIn
from trainhub.server.services import metrics as svc

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


#: The body is parsed by pydantic straight from bytes (``model_validate_json``, its Rust JSON
#: parser): half the time of FastAPI's ``json.loads`` + validation on a 1,000-point batch, the
#: hottest request of the hub. The schema is still documented (see ``app._document_errors``).
_METRICS_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MetricsBatchIn"}}},
    }
}


@router.post("/models/{model_id}/metrics", openapi_extra=_METRICS_BODY)
async def put_metrics(model_id: str, request: Request, store: StoreDep) -> dict[str, int]:
    """Upsert epochs of metrics; a re-sent epoch replaces its values (idempotent).

    Replies ``{"epochs", "points", "replaced"}`` (``replaced``: epochs the server already had)."""
    raw = await request.body()
    try:
        body = MetricsBatchIn.model_validate_json(raw)
    except ValidationError as exc:
        # The same error replies as a declared body (400 invalid_json, 422 validation_error).
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None
    return await run_in_threadpool(svc.put_metrics, store, model_id, body)


@router.get("/models/{model_id}/metrics")
def get_metrics(model_id: str, store: StoreDep) -> list[dict[str, Any]]:
    """Every epoch as ``{"epoch", "metrics"}``."""
    return svc.read_epochs(store, model_id)


@router.get("/models/{model_id}/metrics/series")
def get_series(
    model_id: str, store: StoreDep, name: Annotated[str, Query(min_length=1, max_length=MAX_NAME_LENGTH)]
) -> Response:
    """One metric as ``{"name", "epochs", "values"}``."""
    return json_response(svc.read_series(store, model_id, name))


def json_response(data: Any) -> Response:
    """``data`` encoded once, straight to bytes: FastAPI's default walks every element of a
    100k-point reply through ``jsonable_encoder`` first (most of the time of a big read)."""
    try:
        import orjson
    except ImportError:  # the server extra installs it; plain json is the same bytes, slower
        body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    else:
        body = orjson.dumps(data)
    return Response(body, media_type="application/json")
