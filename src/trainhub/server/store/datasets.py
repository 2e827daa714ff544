"""SQL of datasets (uploaded dataset zips, referenced by models through their ``data`` train arg)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trainhub.server.store.rows import as_dict
from trainhub.server.store.tables import datasets

__all__ = [
    "count_datasets",
    "find_by_name",
    "get_dataset",
    "insert_dataset",
    "list_datasets",
    "update_dataset",
]


def insert_dataset(conn: Connection, row: Mapping[str, Any]) -> None:
    """Insert one dataset row."""
    conn.execute(sa.insert(datasets).values(**row))


def get_dataset(conn: Connection, dataset_id: str) -> Mapping[str, Any] | None:
    """One dataset row, or None."""
    row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).first()
    return as_dict(row) if row else None


def find_by_name(conn: Connection, name: str) -> Mapping[str, Any] | None:
    """The newest dataset called ``name``, or None."""
    query = (
        sa.select(datasets)
        .where(datasets.c.name == name)
        .order_by(datasets.c.created_at.desc(), datasets.c.id.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    return as_dict(row) if row else None


def list_datasets(
    conn: Connection,
    *,
    limit: int,
    after_id: str | None = None,
    visible: sa.ColumnElement[bool] | None = None,
) -> list[Mapping[str, Any]]:
    """Datasets newest first, only those matching ``visible`` (if given); ``after_id`` continues
    after that row (cursor paging; a cursor that is not a visible row starts from the top)."""
    query = sa.select(datasets)
    if visible is not None:
        query = query.where(visible)
    if after_id is not None:
        anchor = conn.execute(query.where(datasets.c.id == after_id)).first()
        if anchor is not None:
            query = query.where(
                sa.or_(
                    datasets.c.created_at < anchor.created_at,
                    sa.and_(datasets.c.created_at == anchor.created_at, datasets.c.id < anchor.id),
                )
            )
    query = query.order_by(datasets.c.created_at.desc(), datasets.c.id.desc()).limit(limit)
    return [as_dict(r) for r in conn.execute(query)]


def count_datasets(conn: Connection, visible: sa.ColumnElement[bool] | None = None) -> int:
    """Number of datasets (those matching ``visible``, if given)."""
    query = sa.select(sa.func.count()).select_from(datasets)
    if visible is not None:
        query = query.where(visible)
    return int(conn.execute(query).scalar_one())


def update_dataset(conn: Connection, dataset_id: str, **values: Any) -> None:
    """Set columns of one dataset."""
    conn.execute(sa.update(datasets).where(datasets.c.id == dataset_id).values(**values))
