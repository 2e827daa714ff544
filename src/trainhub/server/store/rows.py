"""Row conversion: store functions return plain dicts, so services never see SQLAlchemy rows."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.engine import Row

__all__ = ["as_dict"]


def as_dict(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    """A result row as ``{column label: value}``."""
    return cast(dict[str, Any], dict(row._mapping))
