"""Anonymous usage events: store batches, summarise counts."""

from __future__ import annotations

from typing import Any

from trainhub.protocol import MAX_EVENTS_PER_REQUEST, ErrorCode
from trainhub.server.errors import ApiError
from trainhub.server.schemas import EventsBatchIn
from trainhub.server.store import events as q
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import utcnow

__all__ = ["record_events", "summary"]


def record_events(store: Store, batch: EventsBatchIn) -> int:
    """Store a batch of events; returns how many were accepted.

    Raises:
        ApiError: 413 ``payload_too_large`` past :data:`~trainhub.protocol.MAX_EVENTS_PER_REQUEST`.
    """
    if len(batch.events) > MAX_EVENTS_PER_REQUEST:
        message = f"at most {MAX_EVENTS_PER_REQUEST} events per request"
        raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, message)
    now = utcnow()
    rows = [
        {
            "kind": e.kind,
            "install_id": e.install_id,
            "task": e.task,
            "mode": e.mode,
            "versions": e.versions,
            "trainhub_version": e.versions.get("trainhub"),
            "ultralytics_version": e.versions.get("ultralytics"),
            "ts": e.ts,
            "received_at": now,
        }
        for e in batch.events
    ]
    with store.write() as conn:
        q.insert_events(conn, rows)
    return len(rows)


def summary(store: Store) -> dict[str, Any]:
    """Counts: total, distinct installs, per kind, per trainhub and ultralytics version."""
    with store.read() as conn:
        by_kind = q.count_by(conn, "kind")
        return {
            "total": sum(by_kind.values()),
            "installs": q.count_installs(conn),
            "by_kind": by_kind,
            "by_trainhub_version": q.count_by(conn, "trainhub_version"),
            "by_ultralytics_version": q.count_by(conn, "ultralytics_version"),
        }
