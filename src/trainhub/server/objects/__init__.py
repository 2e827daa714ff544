"""Object stores: where checkpoint blobs live, content-addressed by sha256.

An upload goes through :class:`Upload`: ``write`` chunks (hashed as they come), then
``commit`` (the blob appears atomically under its sha256) or ``abort`` (nothing is left).
Backends: :mod:`trainhub.server.objects.local` (``file://``); S3 comes later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["BlobInfo", "ObjectStore", "Upload"]


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob: its sha256 hex, size in bytes, and whether this upload created it."""

    sha256: str
    size: int
    created: bool


class Upload(Protocol):
    """One in-progress upload to a temporary object, invisible until :meth:`commit`."""

    @property
    def size(self) -> int:
        """Bytes written so far."""
        ...

    def write(self, data: bytes) -> None:
        """Append and hash a chunk."""
        ...

    def hexdigest(self) -> str:
        """sha256 hex of the bytes written so far."""
        ...

    def commit(self) -> BlobInfo:
        """Make the blob visible under its sha256 (dropping the copy if it already exists)."""
        ...

    def abort(self) -> None:
        """Delete the temporary object; safe to call more than once or after commit."""
        ...


class ObjectStore(Protocol):
    """A content-addressed blob store."""

    def begin_upload(self) -> Upload:
        """Start an upload to a temporary object."""
        ...

    def local_path(self, sha256: str) -> Path | None:
        """The file of a blob, if this backend keeps blobs on a local filesystem and it exists."""
        ...

    def exists(self, sha256: str) -> bool:
        """Whether a blob is stored."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...
