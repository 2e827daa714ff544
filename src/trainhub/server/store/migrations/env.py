"""Alembic environment: runs on the connection handed over by :meth:`Store.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from trainhub.server.store.tables import metadata

_conn = context.config.attributes.get("connection")
if not isinstance(_conn, Connection):
    raise RuntimeError("run migrations through trainhub.server.store.engine.Store.migrate()")
context.configure(
    connection=_conn,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables in later revisions.
    render_as_batch=_conn.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
