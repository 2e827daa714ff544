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


def record_events(store: Store, batch: EventsBatchIn, user_id: str | None = None) -> dict[str, int]:
    """Store a batch of events, each ``id`` once; returns :class:`~trainhub.protocol.EventsReply`
    (``accepted``: stored now, ``duplicates``: ids already stored or repeated in the batch).

    Raises:
        ApiError: 413 ``payload_too_large`` past :data:`~trainhub.protocol.MAX_EVENTS_PER_REQUEST`.
    """
    if len(batch.events) > MAX_EVENTS_PER_REQUEST:
        message = f"at most {MAX_EVENTS_PER_REQUEST} events per request"
        raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, message)
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "event_id": e.id,
            "kind": e.kind,
            "install_id": e.install_id,
            "task": e.task,
            "mode": e.mode,
            "versions": e.versions,
            "trainhub_version": e.versions.get("trainhub"),
            "ultralytics_version": e.versions.get("ultralytics"),
            "ts": e.ts,
            "received_at": now,
            "user_id": user_id,
        }
        for e in batch.events
    ]
    with store.write() as conn:
        seen = q.existing_event_ids(conn, [r["event_id"] for r in rows if r["event_id"] is not None])
        fresh: list[dict[str, Any]] = []
        for row in rows:
            if row["event_id"] is not None:
                if row["event_id"] in seen:
                    continue
                seen.add(row["event_id"])
            fresh.append(row)
        q.insert_events(conn, store.dialect, fresh)
    return {"accepted": len(fresh), "duplicates": len(rows) - len(fresh)}


def summary(store: Store, user_id: str | None = None) -> dict[str, Any]:
    """Counts: total, distinct installs, per kind, per trainhub and ultralytics version; of the
    events sent with one user's keys if ``user_id`` is given (else all)."""
    with store.read() as conn:
        by_kind = q.count_by(conn, "kind", user_id)
        return {
            "total": sum(by_kind.values()),
            "installs": q.count_installs(conn, user_id),
            "by_kind": by_kind,
            "by_trainhub_version": q.count_by(conn, "trainhub_version", user_id),
            "by_ultralytics_version": q.count_by(conn, "ultralytics_version", user_id),
        }
