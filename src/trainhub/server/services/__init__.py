"""Services: the rules of the hub (status transitions, checkpoint slots, key handling).

Routes call services; services open transactions on the :class:`~trainhub.server.store.engine.Store`
and call the SQL functions of ``trainhub.server.store``. Services raise
:class:`~trainhub.server.errors.ApiError` for anything a client did wrong.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["iso"]


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z`` suffix, or None."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")
