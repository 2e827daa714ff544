"""Projects and models: creation, reads with computed metrics and liveness, status, heartbeat, stop.

Liveness is computed when a model is read, never by a background job, so any number of server
workers agree without coordination: a stored ``training`` status is shown as ``stalled`` or
``crashed`` from the age of the model's last sign of life (``last_seen_at``: heartbeat, metrics or
checkpoint) and the heartbeat interval the client announced (see :class:`Liveness`). A sign of life
sets ``last_seen_at`` (and a stored ``new``/``stalled``/``crashed`` back to ``training``), so a late
heartbeat or upload of a "crashed" run shows it as ``training`` again.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from trainhub.protocol import DEFAULT_HEARTBEAT_INTERVAL, STALLED_AFTER_INTERVALS, ErrorCode, ModelStatus
from trainhub.server import access
from trainhub.server.auth import Principal
from trainhub.server.errors import ApiError
from trainhub.server.schemas import ModelCreateIn, StatusUpdateIn
from trainhub.server.services import iso
from trainhub.server.store import models as q
from trainhub.server.store import users as user_q
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import projects, utcnow

__all__ = [
    "LIVENESS",
    "Liveness",
    "create_model",
    "create_project",
    "get_model",
    "heartbeat",
    "list_models",
    "list_projects",
    "mark_training",
    "model_out",
    "request_stop",
    "require_model",
    "update_status",
]

#: States that a sign of life (heartbeat, metrics, checkpoint) moves to ``training``.
_REVIVABLE = (ModelStatus.NEW, ModelStatus.STALLED, ModelStatus.CRASHED)


@dataclass
class Liveness:
    """The read-time liveness rule.

    Attributes:
        crash_timeout: seconds without a sign of life after which a ``training`` model reads as
            ``crashed`` (``ServerSettings.crash_timeout``; ``create_app`` sets it).
    """

    crash_timeout: float = 600.0

    def status(self, row: Mapping[str, Any], now: datetime | None = None) -> str:
        """The status to show for a model row: the stored one, except for ``training`` models that
        stopped showing signs of life (``stalled`` after two heartbeat intervals, then ``crashed``)."""
        stored = str(row["status"])
        seen = row.get("last_seen_at") or row.get("last_heartbeat_at")
        if stored != ModelStatus.TRAINING.value or seen is None:
            return stored
        age = ((now or utcnow()) - seen).total_seconds()
        if age > self.crash_timeout:
            return ModelStatus.CRASHED.value
        interval = row.get("heartbeat_interval") or DEFAULT_HEARTBEAT_INTERVAL
        if age > STALLED_AFTER_INTERVALS * interval:
            return ModelStatus.STALLED.value
        return stored


#: The rule every read uses (one per server process; configured from the settings by create_app).
LIVENESS = Liveness()


def _best(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, float | None], int | None]:
    best: dict[str, float | None] = {}
    last: int | None = None
    for r in rows:
        last = r["last_step"] if last is None else max(last, r["last_step"])
        name = r["name"]
        if "loss" in name.lower():
            best[name] = r["min"]
        elif name.startswith("metrics/"):
            best[name] = r["max"]
    return dict(sorted(best.items())), last


def model_out(row: Mapping[str, Any], summary: Sequence[Mapping[str, Any]], base_url: str) -> dict[str, Any]:
    """The API view of a model row (:class:`trainhub.protocol.ModelOut`)."""
    best, last_epoch = _best(summary)
    return {
        "id": row["id"],
        "name": row["name"],
        "project": row["project"],
        "status": LIVENESS.status(row),
        "config": row["config"] or {},
        "epochs": row["epochs"],
        "task": row["task"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "last_heartbeat_at": iso(row["last_heartbeat_at"]),
        "agent": row["agent"],
        "last_epoch": last_epoch,
        "best_metrics": best,
        "final_metrics": row["final_metrics"] or {},
        "stop_requested": bool(row["stop_requested"]),
        "url": f"{base_url}/models/{row['id']}",
    }


def require_model(conn: Connection, model_id: str) -> Mapping[str, Any]:
    """The model row, or ApiError 404 ``model_not_found``."""
    row = q.get_model(conn, model_id)
    if row is None:
        raise ApiError(404, ErrorCode.MODEL_NOT_FOUND, f"no model with id {model_id!r}")
    return row


def mark_training(conn: Connection, model: Mapping[str, Any], *, interval: float | None = None) -> str:
    """Record a sign of life: move a new/stalled/crashed model to ``training`` and set its
    ``last_seen_at`` (and its heartbeat ``interval`` when given); returns the resulting status."""
    now = utcnow()
    values: dict[str, Any] = {"updated_at": now, "last_seen_at": now}
    if interval is not None:
        values["heartbeat_interval"] = interval
    status = str(model["status"])
    if status in _REVIVABLE:
        status = values["status"] = ModelStatus.TRAINING.value
    q.update_model(conn, model["id"], **values)
    return status


def _read_out(conn: Connection, model_id: str, base_url: str) -> dict[str, Any]:
    row = require_model(conn, model_id)
    return model_out(row, q.metric_summaries(conn, [model_id]).get(model_id, []), base_url)


def create_project(store: Store, principal: Principal, name: str, team: str | None = None) -> dict[str, Any]:
    """Create a project owned by the caller's user, or by ``team`` (idempotent by name).

    Raises:
        ApiError: 404 ``team_not_found``; 403 ``forbidden`` (the name is another owner's, or the
            caller is not in the team, or the key lists other projects).
    """
    with store.write() as conn:
        team_id = None
        if team is not None:
            found = user_q.find_team(conn, team)
            if found is None or not (principal.user_admin or found["id"] in principal.team_ids):
                raise ApiError(404, ErrorCode.TEAM_NOT_FOUND, f"no team {team!r} of yours")
            team_id = str(found["id"])
        access.writable_project(conn, store.dialect, principal, name, team_id=team_id)
    return next(p for p in list_projects(store, principal) if p["name"] == name)


def list_projects(store: Store, principal: Principal) -> list[dict[str, Any]]:
    """The projects the caller sees: name, created_at, model_count, owner (user or team)."""
    with store.read() as conn:
        rows = q.list_projects(conn, access.owner_clause(projects, principal))
    return [
        {
            "name": r["name"],
            "created_at": iso(r["created_at"]),
            "model_count": int(r["model_count"]),
            "owner": r["owner_team"] or r["owner_user"],
            "owner_kind": "team" if r["owner_team"] else "user" if r["owner_user"] else None,
        }
        for r in rows
    ]


def create_model(
    store: Store, principal: Principal, model_id: str | None, body: ModelCreateIn, base_url: str
) -> tuple[dict[str, Any], bool]:
    """Create a model (server-made id when ``model_id`` is None) or get the existing one.

    Returns ``(model, created)``. An existing model is returned unchanged (create-or-get). The
    model goes to ``body.project`` (the caller's default project if None or ``"default"``),
    which the caller must be allowed to write to (see :func:`trainhub.server.access.writable_project`).
    """
    now = utcnow()
    with store.write() as conn:
        if model_id is None:
            model_id = secrets.token_hex(10)
        elif q.get_model(conn, model_id) is not None:
            return _read_out(conn, model_id, base_url), False
        project_id = access.writable_project(conn, store.dialect, principal, body.project)
        created = q.insert_model(
            conn,
            store.dialect,
            {
                "id": model_id,
                "name": body.name,
                "project_id": project_id,
                "status": ModelStatus.NEW.value,
                "config": body.config,
                "epochs": body.epochs,
                "task": body.task,
                "created_at": now,
                "updated_at": now,
                "stop_requested": False,
            },
        )
        return _read_out(conn, model_id, base_url), created


def get_model(store: Store, model_id: str, base_url: str) -> dict[str, Any]:
    """One model, or ApiError 404."""
    with store.read() as conn:
        return _read_out(conn, model_id, base_url)


def list_models(
    store: Store,
    principal: Principal,
    base_url: str,
    *,
    project: str | None = None,
    q_text: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The models the caller sees, newest first, filtered by project name and name substring."""
    with store.read() as conn:
        visible = access.owner_clause(projects, principal)
        rows = q.list_models(conn, project=project, q=q_text, limit=limit, visible=visible)
        summaries = q.metric_summaries(conn, [r["id"] for r in rows])
    return [model_out(r, summaries.get(r["id"], []), base_url) for r in rows]


def update_status(store: Store, model_id: str, body: StatusUpdateIn, base_url: str) -> dict[str, Any]:
    """Set a model's status (and final metrics, if given).

    Setting ``training`` explicitly means a run resumes the model: an earlier stop request is
    cleared, or the resumed run would stop again at its first heartbeat.
    """
    with store.write() as conn:
        require_model(conn, model_id)
        values: dict[str, Any] = {"updated_at": utcnow()}
        if body.status is not None:
            values["status"] = body.status.value
            if body.status is ModelStatus.TRAINING:
                values["stop_requested"] = False
        if body.final_metrics is not None:
            values["final_metrics"] = body.final_metrics
        q.update_model(conn, model_id, **values)
        return _read_out(conn, model_id, base_url)


def heartbeat(store: Store, model_id: str, agent: str, interval: float | None = None) -> dict[str, Any]:
    """Record a heartbeat (and the client's heartbeat ``interval``, seconds, which liveness uses);
    returns the model's stable agent id, status and stop flag."""
    with store.write() as conn:
        model = require_model(conn, model_id)
        status = mark_training(conn, model, interval=interval)
        # Generated once per model and echoed forever, so the client can tell "same run" apart.
        agent_id = model["agent_id"] or secrets.token_hex(8)
        q.update_model(conn, model_id, agent=agent, agent_id=agent_id, last_heartbeat_at=utcnow())
        return {"agent_id": agent_id, "status": status, "stop_requested": bool(model["stop_requested"])}


def request_stop(store: Store, model_id: str, base_url: str) -> dict[str, Any]:
    """Ask the run to stop; the next heartbeat reply carries ``stop_requested=true``."""
    with store.write() as conn:
        require_model(conn, model_id)
        q.update_model(conn, model_id, stop_requested=True, updated_at=utcnow())
        return _read_out(conn, model_id, base_url)
