"""Routes of metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from trainhub.protocol import MAX_NAME_LENGTH
from trainhub.server.routes.deps import StoreDep
from trainhub.server.schemas import MetricsBatchIn
from trainhub.server.services import metrics as svc

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


@router.post("/models/{model_id}/metrics")
def put_metrics(model_id: str, body: MetricsBatchIn, store: StoreDep) -> dict[str, int]:
    """Upsert epochs of metrics; a re-sent epoch replaces its values (idempotent)."""
    return svc.put_metrics(store, model_id, body)


@router.get("/models/{model_id}/metrics")
def get_metrics(model_id: str, store: StoreDep) -> list[dict[str, Any]]:
    """Every epoch as ``{"epoch", "metrics"}``."""
    return svc.read_epochs(store, model_id)


@router.get("/models/{model_id}/metrics/series")
def get_series(
    model_id: str, store: StoreDep, name: Annotated[str, Query(min_length=1, max_length=MAX_NAME_LENGTH)]
) -> dict[str, Any]:
    """One metric as ``{"name", "epochs", "values"}``."""
    return svc.read_series(store, model_id, name)
