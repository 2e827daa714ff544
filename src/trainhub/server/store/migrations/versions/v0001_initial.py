"""Initial schema: projects, models, metric_points, checkpoints, events, api_keys, web_sessions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create every table (portable types: they must also work on PostgreSQL)."""
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("epochs", sa.Integer, nullable=True),
        sa.Column("task", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("last_heartbeat_at", sa.DateTime, nullable=True),
        sa.Column("agent", sa.String(200), nullable=True),
        sa.Column("agent_id", sa.String(64), nullable=True),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.Column("final_metrics", sa.JSON, nullable=True),
        sa.Column("final_map", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_models_project_id_projects"),
    )
    op.create_index("ix_models_project_id", "models", ["project_id"])
    op.create_index("ix_models_created_at", "models", ["created_at"])
    op.create_table(
        "metric_points",
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("model_id", "name", "step", name="pk_metric_points"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_metric_points_model_id_models", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "checkpoints",
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=True),
        sa.Column("is_best", sa.Boolean, nullable=False),
        sa.Column("map", sa.Double, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("model_id", "kind", name="pk_checkpoints"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_checkpoints_model_id_models", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_checkpoints_sha256", "checkpoints", ["sha256"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("install_id", sa.String(200), nullable=False),
        sa.Column("task", sa.String(200), nullable=True),
        sa.Column("mode", sa.String(200), nullable=True),
        sa.Column("versions", sa.JSON, nullable=False),
        sa.Column("trainhub_version", sa.String(64), nullable=True),
        sa.Column("ultralytics_version", sa.String(64), nullable=True),
        sa.Column("ts", sa.Double, nullable=True),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_kind", "events", ["kind"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_used_at", sa.DateTime, nullable=True),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_web_sessions"),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name="fk_web_sessions_key_id_api_keys", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])


def downgrade() -> None:
    """Drop every table."""
    for table in ("web_sessions", "api_keys", "events", "checkpoints", "metric_points", "models", "projects"):
        op.drop_table(table)
