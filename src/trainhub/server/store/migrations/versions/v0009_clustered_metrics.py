"""SQLite: store metric points and rollups clustered by their primary key (``WITHOUT ROWID``).

A rowid table keeps each point twice: in the table and in the primary-key index
``(model_id, name, step)``. Clustered, a point is one b-tree entry: an epoch's insert touches one
tree instead of two (~25% less time per 1,000-point batch here) and the file is about half the
size; a series read walks one range of the tree. PostgreSQL is unchanged.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = ("metric_points", "metric_rollups")


def _rebuild(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in _TABLES:
        # Batch mode copies the table into a new one made with these options, then swaps them.
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}):
            pass


def upgrade() -> None:
    """Rebuild the two tables ``WITHOUT ROWID`` (SQLite only)."""
    _rebuild(False)


def downgrade() -> None:
    """Rebuild them as rowid tables again (SQLite only)."""
    _rebuild(True)
