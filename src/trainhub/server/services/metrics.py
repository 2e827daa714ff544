"""Metrics: idempotent batch upserts and reads (per epoch and per series)."""

from __future__ import annotations

from typing import Any

from trainhub.protocol import MAX_EPOCHS_PER_REQUEST, MAX_METRICS_PER_EPOCH, ErrorCode
from trainhub.server.errors import ApiError
from trainhub.server.schemas import MetricsBatchIn
from trainhub.server.services.models import mark_training, require_model
from trainhub.server.store import metrics as q
from trainhub.server.store.engine import Store

__all__ = ["put_metrics", "read_epochs", "read_series"]


def put_metrics(store: Store, model_id: str, batch: MetricsBatchIn) -> dict[str, int]:
    """Upsert every (epoch, name) point of a batch; a re-sent epoch replaces its values.

    Returns :class:`~trainhub.protocol.MetricsReply`: ``epochs``, ``points`` and ``replaced`` (how
    many of the epochs were already stored: a client re-sending after a lost reply learns that they
    were "already present").

    Raises:
        ApiError: 413 ``payload_too_large`` past the protocol's per-request limits,
            404 ``model_not_found``.
    """
    if len(batch.epochs) > MAX_EPOCHS_PER_REQUEST:
        raise ApiError(
            413, ErrorCode.PAYLOAD_TOO_LARGE, f"at most {MAX_EPOCHS_PER_REQUEST} epochs per request"
        )
    # (name, step) -> value; a step sent twice in one batch keeps its last values, as row by row.
    points: dict[tuple[str, int], float | None] = {}
    for ep in batch.epochs:
        if len(ep.metrics) > MAX_METRICS_PER_EPOCH:
            raise ApiError(
                413,
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"epoch {ep.epoch}: at most {MAX_METRICS_PER_EPOCH} metrics per epoch",
            )
        step = ep.epoch
        points.update(((name, step), value) for name, value in ep.metrics.items())
    steps = {ep.epoch for ep in batch.epochs}
    with store.write() as conn:
        model = require_model(conn, model_id)
        # An epoch counts as replaced when one of its points was already stored.
        replaced = len({step for _, step in q.upsert_series(conn, store.dialect, model_id, points)})
        mark_training(conn, model)
    count = sum(len(ep.metrics) for ep in batch.epochs)
    return {"epochs": len(steps), "points": count, "replaced": replaced}


def read_epochs(store: Store, model_id: str) -> list[dict[str, Any]]:
    """Every epoch as ``{"epoch", "metrics"}``, by epoch."""
    with store.read() as conn:
        require_model(conn, model_id)
        points = q.read_points(conn, model_id)
    out: list[dict[str, Any]] = []
    for step, name, value in points:
        if not out or out[-1]["epoch"] != step:
            out.append({"epoch": step, "metrics": {}})
        out[-1]["metrics"][name] = value
    return out


def read_series(store: Store, model_id: str, name: str) -> dict[str, Any]:
    """One metric as ``{"name", "epochs", "values"}`` (empty lists for an unknown name)."""
    with store.read() as conn:
        require_model(conn, model_id)
        steps, values = q.read_series(conn, model_id, name)
    return {"name": name, "epochs": steps, "values": values}
