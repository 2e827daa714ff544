"""Local-filesystem object store (``file:///path``): blobs at ``blobs/<sha[:2]>/<sha>``.

Uploads are written to ``tmp/`` in the same filesystem, fsynced, then renamed into place:
``os.replace`` is atomic, so a reader sees either no blob or the whole blob. Identical content
lands on the same path and is stored once.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from trainhub.server.errors import ConfigError
from trainhub.server.objects import BlobInfo

__all__ = ["LocalObjectStore", "LocalUpload"]

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
#: Temp files older than this are leftovers of a crashed process (removed on open).
_STALE_TMP_SECONDS = 24 * 3600


class LocalUpload:
    """An upload to ``tmp/<random>``; see :class:`trainhub.server.objects.Upload`."""

    def __init__(self, store: LocalObjectStore, tmp_path: Path) -> None:
        self._store = store
        self._tmp = tmp_path
        self._fh: BinaryIO | None = open(tmp_path, "xb")  # noqa: SIM115 - closed in commit/abort
        self._hash = hashlib.sha256()
        self._size = 0

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    def write(self, data: bytes) -> None:
        """Append and hash a chunk."""
        assert self._fh is not None, "upload already finished"
        self._fh.write(data)
        self._hash.update(data)
        self._size += len(data)

    def hexdigest(self) -> str:
        """sha256 hex of the bytes written so far."""
        return self._hash.hexdigest()

    def commit(self) -> BlobInfo:
        """fsync, then rename into ``blobs/``; drop the copy if the blob already exists."""
        assert self._fh is not None, "upload already finished"
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        sha = self.hexdigest()
        final = self._store.blob_path(sha)
        if final.exists():
            self._tmp.unlink(missing_ok=True)
            return BlobInfo(sha, self._size, created=False)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, final)
        return BlobInfo(sha, self._size, created=True)

    def abort(self) -> None:
        """Close and delete the temp file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._tmp.unlink(missing_ok=True)


class LocalObjectStore:
    """Blobs in a directory; see :class:`trainhub.server.objects.ObjectStore`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs"
        self._tmp = root / "tmp"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._remove_stale_tmp()

    @classmethod
    def from_url(cls, url: str) -> LocalObjectStore:
        """Open a ``file:///abs/path`` (or ``file://rel/path``) store."""
        parsed = urlparse(url)
        if parsed.scheme != "file":
            raise ConfigError(f"not a file:// URL: {url!r}")
        path = unquote(parsed.netloc + parsed.path)
        if not path:
            raise ConfigError(f"file:// URL without a path: {url!r}")
        return cls(Path(path).expanduser())

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - _STALE_TMP_SECONDS
        for p in self._tmp.iterdir():
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
            except OSError:
                pass  # another process may have just finished with it

    def blob_path(self, sha256: str) -> Path:
        """Where a blob lives (whether or not it exists)."""
        if not _SHA_RE.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self._blobs / sha256[:2] / sha256

    def begin_upload(self) -> LocalUpload:
        """Start an upload to a fresh temp file."""
        return LocalUpload(self, self._tmp / f"upload-{secrets.token_hex(12)}")

    def local_path(self, sha256: str) -> Path | None:
        """The blob's file, or None if missing."""
        path = self.blob_path(sha256)
        return path if path.is_file() else None

    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        return self.blob_path(sha256).is_file()

    def tmp_files(self) -> list[Path]:
        """In-progress (or leftover) temp files; used by tests to check atomicity."""
        return sorted(self._tmp.iterdir())

    def close(self) -> None:
        """Nothing to release."""
