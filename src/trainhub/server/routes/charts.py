"""Routes of chart data: downsampled series of a model, and several models compared.

``GET /models/{id}/charts`` answers with an ``ETag``; a poll that sends it back as
``If-None-Match`` gets ``304`` without any series being read, so a page can poll every couple of
seconds while a run trains.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from trainhub.protocol import MAX_NAME_LENGTH, ErrorCode
from trainhub.server import access
from trainhub.server.errors import ApiError
from trainhub.server.routes.deps import BaseUrl, PrincipalDep, StoreDep
from trainhub.server.services import charts as svc
from trainhub.server.services import models as model_svc

__all__ = ["router"]

router = APIRouter(tags=["charts"])

MaxPoints = Annotated[int, Query(ge=svc.MIN_MAX_POINTS, le=svc.MAX_MAX_POINTS)]
#: Most models on one comparison.
MAX_COMPARE = 20


@router.get("/models/{model_id}/charts")
async def get_charts(
    model_id: str, request: Request, store: StoreDep, max_points: MaxPoints = svc.DEFAULT_MAX_POINTS
) -> Response:
    """Every series of a model, downsampled to at most ``max_points`` points each (keeping each
    series' min and max), grouped like Ultralytics' results plot. Sends an ``ETag``; answers
    ``304`` to a matching ``If-None-Match``."""
    version = await run_in_threadpool(svc.chart_version, store, model_id, max_points)
    etag = f'"{version}"'
    headers = {"etag": etag, "cache-control": "no-cache, private"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    data = await run_in_threadpool(svc.chart_data, store, model_id, max_points)
    headers["etag"] = f'"{data["version"]}"'
    return JSONResponse(data, headers=headers)


@router.get("/models/{model_id}/charts/series")
def get_chart_series(
    model_id: str,
    store: StoreDep,
    name: Annotated[str, Query(min_length=1, max_length=MAX_NAME_LENGTH)],
    max_points: MaxPoints = svc.DEFAULT_MAX_POINTS,
) -> dict[str, Any]:
    """One series as ``{"name", "steps", "values", "count", "downsampled", "min", "max"}``, at most
    ``max_points`` points, always including the series' min and max."""
    return svc.read_series(store, model_id, name, max_points)


@router.get("/compare")
def compare_models(
    store: StoreDep,
    principal: PrincipalDep,
    base: BaseUrl,
    ids: Annotated[list[str], Query(min_length=1)],
    metric: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
    max_points: MaxPoints = svc.DEFAULT_MAX_POINTS,
) -> dict[str, Any]:
    """Several models: one metric's curves, their final metrics and the train args that differ."""
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_COMPARE:
        raise ApiError(422, ErrorCode.VALIDATION_ERROR, f"at most {MAX_COMPARE} models per comparison")
    access.check_models(store, principal, unique)
    models = [model_svc.get_model(store, model_id, base) for model_id in unique]
    return {"models": models, **svc.compare(store, models, metric, max_points)}
