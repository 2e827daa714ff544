"""Routes of metrics."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from trainhub.protocol import MAX_NAME_LENGTH
from trainhub.server.routes.deps import StoreDep
from trainhub.server.schemas import MetricsBatchIn
from trainhub.server.services import metrics as svc

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


@router.post("/models/{model_id}/metrics")
def put_metrics(model_id: str, body: MetricsBatchIn, store: StoreDep) -> dict[str, int]:
    """Upsert epochs of metrics; a re-sent epoch replaces its values (idempotent).

    Replies ``{"epochs", "points", "replaced"}`` (``replaced``: epochs the server already had)."""
    return svc.put_metrics(store, model_id, body)


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
