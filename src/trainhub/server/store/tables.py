"""SQLAlchemy Core tables of the store (the Alembic migrations create exactly these).

Portable types only (they must work on SQLite now and PostgreSQL later): ``Double`` for metric
values (never float32), ``BigInteger`` for sizes, ``JSON`` for free-form dicts and
:class:`UtcDateTime` for timestamps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "UtcDateTime",
    "api_keys",
    "audit_log",
    "checkpoints",
    "compat_runs",
    "compat_uploads",
    "datasets",
    "events",
    "metadata",
    "metric_points",
    "metric_rollups",
    "models",
    "projects",
    "server_secrets",
    "team_members",
    "teams",
    "uploads",
    "users",
    "utcnow",
    "web_sessions",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC (SQLite keeps no time zone; this keeps both equal)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UtcDateTime needs an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# --- users and teams (migration 0008) -------------------------------------------------------------

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    # argon2id hash (``services/users.py``); None: the user cannot log in with a password.
    sa.Column("password_hash", sa.String(200), nullable=True),
    # An admin user sees every project and may hold admin keys.
    sa.Column("is_admin", sa.Boolean, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # A disabled user's keys and web sessions stop working at once.
    sa.Column("disabled_at", UtcDateTime, nullable=True),
)

teams = sa.Table(
    "teams",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

team_members = sa.Table(
    "team_members",
    metadata,
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Migration 0008: the owner, a user or a team (both None: only admin users see it).
    sa.Column("owner_user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=True, index=True),
    sa.Column("owner_team_id", sa.String(32), sa.ForeignKey("teams.id"), nullable=True, index=True),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("epochs", sa.Integer, nullable=True),
    sa.Column("task", sa.String(200), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False, index=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("last_heartbeat_at", UtcDateTime, nullable=True),
    sa.Column("agent", sa.String(200), nullable=True),
    sa.Column("agent_id", sa.String(64), nullable=True),
    sa.Column("stop_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("final_metrics", sa.JSON, nullable=True),
    sa.Column("final_map", sa.Double, nullable=True),
    # Migration 0004: liveness (the shown status is computed from these at read time).
    sa.Column("heartbeat_interval", sa.Double, nullable=True),
    sa.Column("last_seen_at", UtcDateTime, nullable=True),
)

metric_points = sa.Table(
    "metric_points",
    metadata,
    sa.Column("model_id", sa.String(64), sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    sa.Column("value", sa.Double, nullable=True),
    # Migration 0009: clustered by the primary key on SQLite (one b-tree per point, not two).
    sqlite_with_rowid=False,
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("model_id", sa.String(64), sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.String(20), primary_key=True),
    sa.Column("epoch", sa.Integer, nullable=True),
    sa.Column("is_best", sa.Boolean, nullable=False),
    sa.Column("map", sa.Double, nullable=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False, index=True),
    sa.Column("install_id", sa.String(200), nullable=False),
    sa.Column("task", sa.String(200), nullable=True),
    sa.Column("mode", sa.String(200), nullable=True),
    sa.Column("versions", sa.JSON, nullable=False),
    sa.Column("trainhub_version", sa.String(64), nullable=True),
    sa.Column("ultralytics_version", sa.String(64), nullable=True),
    sa.Column("ts", sa.Double, nullable=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
    # Migration 0004: the client-made id; unique, so a re-sent event is stored once.
    sa.Column("event_id", sa.String(64), nullable=True, unique=True),
    # Migration 0008: the user whose key sent it (summaries show a user their own events).
    sa.Column("user_id", sa.String(32), nullable=True, index=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False),
    # Migration 0006: a read-only key may only GET/HEAD (403 otherwise).
    sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_used_at", UtcDateTime, nullable=True),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    # Migration 0008: the owner (the key sees what its user sees) and, optionally, the only
    # projects (names) it may write to.
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=True, index=True),
    sa.Column("projects", sa.JSON, nullable=True),
)

#: Web sessions: of a key (``POST /login`` with a key) or of a user (with a password).
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(32), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False, index=True),
    # Migration 0008: set for password logins (``key_id`` is then None).
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
)


# --- datasets and Ultralytics compatibility (migration 0003) -------------------------------------

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, index=True),
    sa.Column("task", sa.String(200), nullable=True),
    sa.Column("filename", sa.String(255), nullable=True),
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False, index=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # Migration 0008: the owner, as for projects.
    sa.Column("owner_user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=True, index=True),
    sa.Column("owner_team_id", sa.String(32), sa.ForeignKey("teams.id"), nullable=True, index=True),
)

#: Per model: which Ultralytics protocol drives it, the Platform owner and how many runs it had.
compat_runs = sa.Table(
    "compat_runs",
    metadata,
    sa.Column("model_id", sa.String(64), sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("protocol", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("run_count", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

#: Platform checkpoint uploads: staged by ``PUT <uploadUrl>``, promoted by ``checkpoint_saved``.
compat_uploads = sa.Table(
    "compat_uploads",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "model_id", sa.String(64), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=True),
    sa.Column("promoted_at", UtcDateTime, nullable=True),
)

#: Server-side secrets (the HMAC key of signed download/upload URLs), made once on first use.
server_secrets = sa.Table(
    "server_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)


# --- chart rollups (migration 0005) ----------------------------------------------------------------

#: Min/max summaries of metric series over power-of-four step buckets (see ``store/charts.py``):
#: level L, bucket b covers steps ``[b * w, (b + 1) * w)`` with ``w = 16 * 4**L``.
metric_rollups = sa.Table(
    "metric_rollups",
    metadata,
    sa.Column("model_id", sa.String(64), sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("level", sa.Integer, primary_key=True),
    sa.Column("bucket", sa.BigInteger, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("first_step", sa.BigInteger, nullable=False),
    sa.Column("last_step", sa.BigInteger, nullable=False),
    sa.Column("min_step", sa.BigInteger, nullable=True),
    sa.Column("min_value", sa.Double, nullable=True),
    sa.Column("max_step", sa.BigInteger, nullable=True),
    sa.Column("max_value", sa.Double, nullable=True),
    sqlite_with_rowid=False,
)


# --- chunked checkpoint uploads (migration 0002) ---------------------------------------------------

#: Upload sessions (``services/uploads.py``). Parts live in the object store (``list_parts``);
#: ``storage_id`` is the object store's multipart id. ``state``: open, complete, aborted, failed.
uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "model_id", sa.String(64), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("epoch", sa.Integer, nullable=True),
    sa.Column("is_best", sa.Boolean, nullable=False),
    sa.Column("map", sa.Double, nullable=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("part_size", sa.BigInteger, nullable=False),
    sa.Column("storage_id", sa.String(200), nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("bytes_received", sa.BigInteger, nullable=False),
    sa.Column("already_present", sa.Boolean, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# --- audit log (migration 0007) ------------------------------------------------------------------

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False, index=True),
    # The key that acted (its id), or "cli" for `trainhub` commands on the database, or "-".
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200), nullable=True),
    sa.Column("detail", sa.String(500), nullable=True),
)
