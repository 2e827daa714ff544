"""The audit log: who did what, for admin actions and key use (see docs/security.md).

Actions recorded:

* ``key.create`` / ``key.revoke``: target the key id; detail its scope and name.
* ``login`` (a web session started with a key) and ``login.failed`` (actor ``-``; detail the
  client address).
* ``key.use``: a key made a request; written at most once per key, per
  :data:`~trainhub.server.auth.TOUCH_INTERVAL_SECONDS` and per worker process (together with
  ``last_used_at``), so a busy client does not turn every read into a write.

The actor is the acting key's id, ``cli`` for ``trainhub keys`` commands run on the database,
or ``-`` when nobody is authenticated. Secrets (keys, tokens, passwords) are never written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from trainhub.server.services import iso
from trainhub.server.store import audit as q
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import utcnow

__all__ = ["CLI_ACTOR", "NOBODY", "list_entries", "record", "record_in"]

CLI_ACTOR = "cli"
NOBODY = "-"


def record_in(
    conn: Connection, actor: str, action: str, target: str | None = None, detail: str | None = None
) -> None:
    """Append an entry inside the caller's transaction (so it commits with the action)."""
    q.insert_entry(conn, at=utcnow(), actor=actor, action=action, target=target, detail=detail)


def record(
    store: Store, actor: str, action: str, target: str | None = None, detail: str | None = None
) -> None:
    """Append an entry in its own transaction."""
    with store.write() as conn:
        record_in(conn, actor, action, target, detail)


def list_entries(store: Store, *, limit: int = 100, before_id: int | None = None) -> list[dict[str, Any]]:
    """Entries newest first (page with ``before_id`` = the last id seen)."""
    with store.read() as conn:
        rows = q.list_entries(conn, limit=limit, before_id=before_id)
    return [
        {
            "id": r["id"],
            "at": iso(r["at"]),
            "actor": r["actor"],
            "action": r["action"],
            "target": r["target"],
            "detail": r["detail"],
        }
        for r in rows
    ]
