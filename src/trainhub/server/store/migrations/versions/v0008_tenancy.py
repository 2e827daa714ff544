"""Users, teams and ownership: keys and web sessions belong to users, projects and datasets to
a user or a team.

An existing hub keeps working: when keys exist, one admin user named ``admin`` is made; it owns
every existing key, project and dataset (an admin user sees everything, so nothing changes for
the keys in use).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def _owner_columns(table: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("owner_user_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("owner_team_id", sa.String(32), nullable=True))
        batch.create_foreign_key(f"fk_{table}_owner_user_id_users", "users", ["owner_user_id"], ["id"])
        batch.create_foreign_key(f"fk_{table}_owner_team_id_teams", "teams", ["owner_team_id"], ["id"])
        batch.create_index(f"ix_{table}_owner_user_id", ["owner_user_id"])
        batch.create_index(f"ix_{table}_owner_team_id", ["owner_team_id"])


def upgrade() -> None:
    """Create users/teams/team_members, add the owner columns, give existing rows an owner."""
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("disabled_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_teams"),
        sa.UniqueConstraint("name", name="uq_teams_name"),
    )
    op.create_table(
        "team_members",
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name="fk_team_members_team_id_teams", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_team_members_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("team_id", "user_id", name="pk_team_members"),
    )
    _owner_columns("projects")
    _owner_columns("datasets")
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("user_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("projects", sa.JSON, nullable=True))
        batch.create_foreign_key("fk_api_keys_user_id_users", "users", ["user_id"], ["id"])
        batch.create_index("ix_api_keys_user_id", ["user_id"])
    with op.batch_alter_table("web_sessions") as batch:
        batch.alter_column("key_id", existing_type=sa.String(32), nullable=True)
        batch.add_column(sa.Column("user_id", sa.String(32), nullable=True))
        batch.create_foreign_key(
            "fk_web_sessions_user_id_users", "users", ["user_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("user_id", sa.String(32), nullable=True))
        batch.create_index("ix_events_user_id", ["user_id"])

    conn = op.get_bind()
    if conn.execute(sa.text("SELECT count(*) FROM api_keys")).scalar_one():
        admin_id = secrets.token_hex(6)
        now = datetime.now(UTC).replace(tzinfo=None)
        conn.execute(
            sa.text(
                "INSERT INTO users (id, name, password_hash, is_admin, created_at) "
                "VALUES (:id, 'admin', NULL, :yes, :now)"
            ),
            {"id": admin_id, "yes": True, "now": now},
        )
        conn.execute(sa.text("UPDATE api_keys SET user_id = :id"), {"id": admin_id})
        conn.execute(sa.text("UPDATE projects SET owner_user_id = :id"), {"id": admin_id})
        conn.execute(sa.text("UPDATE datasets SET owner_user_id = :id"), {"id": admin_id})


def downgrade() -> None:
    """Drop ownership, users and teams (password sessions are dropped)."""
    conn = op.get_bind()
    conn.execute(sa.text("DELETE FROM web_sessions WHERE key_id IS NULL"))
    with op.batch_alter_table("events") as batch:
        batch.drop_index("ix_events_user_id")
        batch.drop_column("user_id")
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_constraint("fk_web_sessions_user_id_users", type_="foreignkey")
        batch.drop_column("user_id")
        batch.alter_column("key_id", existing_type=sa.String(32), nullable=False)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint("fk_api_keys_user_id_users", type_="foreignkey")
        batch.drop_index("ix_api_keys_user_id")
        batch.drop_column("projects")
        batch.drop_column("user_id")
    for table in ("datasets", "projects"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_owner_user_id_users", type_="foreignkey")
            batch.drop_constraint(f"fk_{table}_owner_team_id_teams", type_="foreignkey")
            batch.drop_index(f"ix_{table}_owner_user_id")
            batch.drop_index(f"ix_{table}_owner_team_id")
            batch.drop_column("owner_user_id")
            batch.drop_column("owner_team_id")
    op.drop_table("team_members")
    op.drop_table("teams")
    op.drop_table("users")
