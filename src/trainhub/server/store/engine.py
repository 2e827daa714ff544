"""The SQL store: an engine plus read/write transaction helpers and migrations.

SQLite specifics (why): WAL lets readers run while one writer commits; a busy timeout makes
concurrent writers wait instead of failing; and write transactions start with
``BEGIN IMMEDIATE`` so a read-then-write transaction never hits SQLITE_BUSY on lock upgrade
(which a busy timeout cannot fix in WAL mode). Read transactions use a plain ``BEGIN``.

PostgreSQL specifics (why): psycopg 3 (``postgresql://`` means ``postgresql+psycopg://``); READ
COMMITTED, the default, with every read-modify-write written as an upsert or serialized by a
transaction-scoped advisory lock (:func:`trainhub.server.store.dialects.lock_key`); a pre-ping,
because a worker may hold pooled connections across a database restart; and migrations run under
an advisory lock, so N workers starting at once apply each revision exactly once (DDL is
transactional in PostgreSQL: a failed upgrade leaves nothing half done).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from trainhub.server.store.checkpoint import BACKSTOP_PAGES, WalCheckpointer

__all__ = ["MIGRATION_LOCK_ID", "Store", "postgresql_engine", "sqlite_engine"]

_MIGRATIONS = Path(__file__).with_name("migrations")
_BUSY_TIMEOUT_MS = 30_000
#: Advisory lock key held while migrating a PostgreSQL database (any constant unique to trainhub).
MIGRATION_LOCK_ID = 0x7472_6169_6E68_7562 & 0x7FFF_FFFF_FFFF_FFFF  # "trainhub"
#: Pool per worker process: requests run in a thread pool (40 threads), most are short.
_PG_POOL_SIZE = 10
_PG_MAX_OVERFLOW = 20


def sqlite_engine(url: str) -> Engine:
    """An engine for a ``sqlite:///path`` URL, with WAL, a busy timeout and IMMEDIATE writes."""
    parsed = sa.make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        parsed, connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level: we emit BEGIN ourselves (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # Checkpoints run on the store's own thread (store/checkpoint.py); this is the backstop.
        cur.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("trainhub_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def postgresql_engine(url: str) -> Engine:
    """An engine for a ``postgresql://`` (or ``postgresql+psycopg://``) URL, through psycopg 3.

    Raises:
        ConfigError: another driver was named (only psycopg 3 is supported).
    """
    from trainhub.server.errors import ConfigError

    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise ConfigError(f"unsupported PostgreSQL driver {parsed.drivername!r}: use postgresql+psycopg://")
    try:
        import psycopg  # noqa: F401 - only to fail with the extra's name
    except ImportError as exc:
        raise ConfigError("postgresql:// needs psycopg: pip install 'trainhub[postgres]'") from exc
    return sa.create_engine(
        parsed,
        pool_size=_PG_POOL_SIZE,
        max_overflow=_PG_MAX_OVERFLOW,
        pool_pre_ping=True,
        pool_recycle=3600,
    )


class Store:
    """Owns the engine; services open transactions with :meth:`read` and :meth:`write`."""

    def __init__(self, engine: Engine) -> None:
        #: SQLite allows one writer: threads queue here and wake the moment the writer commits,
        #: where SQLite's own busy handler would poll, sleeping 1, 2, 5, 10... ms between tries.
        #: Re-entrant: a nested write on the same thread meets SQLite's busy handler as it did before.
        self._write_gate = threading.RLock() if engine.dialect.name == "sqlite" else None
        self.engine = engine
        on_disk = engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")
        self._checkpointer = WalCheckpointer(engine) if on_disk else None

    @property
    def dialect(self) -> str:
        """Dialect name (``sqlite``, ``postgresql``): picks the upsert flavour."""
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; committed on success, rolled back on error."""
        gate = self._write_gate
        # Bounded like SQLite's busy timeout: past it, SQLite's busy handler decides as before.
        held = gate.acquire(timeout=_BUSY_TIMEOUT_MS / 1000) if gate is not None else False
        try:
            with self._write_conn() as conn:
                yield conn
            if self._checkpointer is not None:
                self._checkpointer.committed()
        finally:
            if held and gate is not None:
                gate.release()

    @contextmanager
    def _write_conn(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(trainhub_write=True)
            with conn.begin():
                yield conn

    def migrate(self, target: str = "head") -> str | None:
        """Apply every Alembic migration up to ``target`` (default head; idempotent; safe with
        many workers at once).

        On PostgreSQL the upgrade holds a transaction-scoped advisory lock: a second worker waits,
        then finds the database at head. On SQLite ``BEGIN IMMEDIATE`` serializes the same way.

        Returns:
            The revision the database was at (read under the lock), None if it was empty.
        """
        from alembic.runtime.migration import MigrationContext

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.connect() as conn:
            conn = conn.execution_options(trainhub_write=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})
                before = MigrationContext.configure(conn).get_current_revision()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, target)
        return before

    def revision(self) -> str | None:
        """The database's Alembic revision (None before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        """The newest revision this version of trainhub knows."""
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        return ScriptDirectory.from_config(cfg).get_current_head()

    def close(self) -> None:
        """Stop the checkpoint thread and close every pooled connection."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.engine.dispose()
