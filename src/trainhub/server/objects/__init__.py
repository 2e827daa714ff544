"""Object stores: where checkpoint blobs live, content-addressed by sha256.

An upload goes through :class:`Upload`: ``write`` chunks (hashed as they come), then
``commit`` (the blob appears atomically under its sha256) or ``abort`` (nothing is left).
Backends: :mod:`trainhub.server.objects.local` (``file://``) and :mod:`trainhub.server.objects.s3`
(``s3://bucket/prefix``, any S3-compatible service). Reads: :meth:`ObjectStore.size` and
:meth:`ObjectStore.iter_blob` stream a blob; :meth:`ObjectStore.presigned_url` lets the server
redirect a download to the storage service instead of proxying it.

Chunked (multipart) uploads, shaped like S3's multipart API so every backend can map them 1:1:
:meth:`ObjectStore.create_multipart` -> :meth:`~ObjectStore.put_part` (any order, a re-sent part
replaces) -> :meth:`~ObjectStore.list_parts` -> :meth:`~ObjectStore.complete_multipart` (checks the
total size and sha256, then the blob appears atomically under its sha256) or
:meth:`~ObjectStore.abort_multipart`. Part ``n`` (1-based) holds bytes ``[(n-1)*part_size,
n*part_size)``; the caller (``services/uploads.py``) checks part numbers and sizes before calling.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "READ_CHUNK",
    "BlobInfo",
    "MultipartMismatch",
    "MultipartNotFound",
    "ObjectStore",
    "PartInfo",
    "StorageOptions",
    "Upload",
]

#: Chunk size of streamed blob reads.
READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StorageOptions:
    """Backend options that are not part of the storage URL (S3 endpoint and credentials).

    Unset fields fall back to the backend's usual sources (for S3: ``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``~/.aws``, an
    instance role).
    """

    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob: its sha256 hex, size in bytes, and whether this upload created it."""

    sha256: str
    size: int
    created: bool


@dataclass(frozen=True)
class PartInfo:
    """A stored part of a multipart upload: its number (1-based) and size in bytes."""

    number: int
    size: int


class MultipartNotFound(LookupError):
    """The multipart upload does not exist (never made, completed, aborted or expired)."""


class MultipartMismatch(ValueError):
    """The bytes do not match what was declared. ``code`` is ``size_mismatch`` or
    ``checksum_mismatch`` (values of :class:`trainhub.protocol.ErrorCode`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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

    def size(self, sha256: str) -> int | None:
        """A blob's size in bytes, or None if it is not stored."""
        ...

    def iter_blob(self, sha256: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """Stream a blob's bytes (never the whole blob in memory).

        Raises:
            FileNotFoundError: the blob is not stored.
        """
        ...

    def local_copy(self, sha256: str) -> AbstractContextManager[Path]:
        """A local file with the blob's bytes for the ``with`` block (the blob itself if local).

        Raises:
            FileNotFoundError: the blob is not stored.
        """
        ...

    def presigned_url(self, sha256: str, filename: str, expires_seconds: int) -> str | None:
        """A time-limited URL the client can GET the blob from directly, if the backend has them."""
        ...

    def list_blobs(self) -> Iterator[str]:
        """The sha256 of every stored blob (for ``trainhub migrate-data``)."""
        ...

    def create_multipart(self, part_size: int) -> str:
        """Start a multipart upload of parts of ``part_size`` bytes (the last may be shorter); its id."""
        ...

    def put_part(self, upload_id: str, number: int, data: Iterable[bytes], size: int) -> PartInfo:
        """Store part ``number`` from ``data`` (streamed, never held whole), replacing an earlier copy.

        The part is listed only once all ``size`` bytes arrived; an exception from ``data`` (the client
        went away) leaves it unlisted.

        Raises:
            MultipartNotFound: no such upload.
            MultipartMismatch: ``data`` held more or fewer than ``size`` bytes (``size_mismatch``).
        """
        ...

    def list_parts(self, upload_id: str) -> list[PartInfo]:
        """The complete parts stored, by number. Raises MultipartNotFound."""
        ...

    def complete_multipart(
        self, upload_id: str, *, size: int, sha256: str, known_sha256: str | None = None
    ) -> BlobInfo:
        """Join parts ``1..N`` into the blob ``sha256``, after checking the total size and sha256.

        ``known_sha256`` is the digest the caller computed while every part streamed through it in
        order; when given, the backend may trust it instead of reading the parts again. On success or
        a mismatch the upload is gone (parts deleted); a half upload never becomes visible.

        Raises:
            MultipartNotFound: no such upload.
            MultipartMismatch: the joined parts are not ``size`` bytes or do not hash to ``sha256``.
        """
        ...

    def abort_multipart(self, upload_id: str) -> None:
        """Delete the upload and its parts; idempotent (an unknown id is fine)."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...
