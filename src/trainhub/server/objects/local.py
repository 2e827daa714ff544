"""Local-filesystem object store (``file:///path``): blobs at ``blobs/<sha[:2]>/<sha>``.

Uploads are written to ``tmp/`` in the same filesystem, fsynced, then renamed into place:
``os.replace`` is atomic, so a reader sees either no blob or the whole blob. Identical content
lands on the same path and is stored once.

Multipart uploads live in ``multipart/<id>/``: ``part_size`` (a text file), ``data`` (the whole
file, each part written at its offset, so completing needs no copy) and one marker ``part-<n>``
per complete part (its size as text). A part's marker is removed before its bytes are (re)written
and written, by rename, after the last byte: a part cut off by a crash is simply not listed. Parts
are not fsynced one by one (a crash of the *process* loses nothing, the page cache keeps them);
``complete`` fsyncs the data, and after a restart the sha256 is always computed from the disk, so a
machine crash can only make ``complete`` fail with ``checksum_mismatch``, never store a bad blob.
Directories left by a crashed process with no session row are removed on open after
:data:`_STALE_MULTIPART_SECONDS` (the service expires the others, see ``services/uploads.py``).

Drop-behind: as a part is written, its new pages are handed to the disk at once and dropped from the
page cache once written (``posix_fadvise(DONTNEED)``, where the OS has it; advice only, nothing
depends on it for correctness). The disk then writes while the network receives, instead of the
whole file at ``complete`` (its fsync took ~0.45 s per GiB here; now ~0), and an upload does not
fill the page cache with a blob nobody reads soon: it reuses a few MiB of pages instead of taking
fresh ones (on the 2-CPU dev VM, writing into fresh page-cache pages ran at ~400 MB/s, into reused
ones at ~5 GB/s; see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from trainhub.protocol import UPLOAD_TTL_SECONDS, ErrorCode
from trainhub.server.errors import ConfigError
from trainhub.server.objects import (
    READ_CHUNK,
    BlobInfo,
    MultipartMismatch,
    MultipartNotFound,
    PartInfo,
    StorageOptions,
)

__all__ = ["LocalObjectStore", "LocalUpload"]

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
#: Temp files older than this are leftovers of a crashed process (removed on open).
_STALE_TMP_SECONDS = 24 * 3600
#: Multipart directories untouched for this long are leftovers (sessions expire sooner).
_STALE_MULTIPART_SECONDS = 2 * UPLOAD_TTL_SECONDS
_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
#: Bytes read at a time when hashing the joined parts.
_HASH_CHUNK = 4 * 1024 * 1024
#: Linux/BSD only; None elsewhere (macOS, Windows): drop-behind is then skipped.
_FADVISE = getattr(os, "posix_fadvise", None)
#: Bytes written between two drop-behind calls (one syscall per MiB, whatever the chunk size).
_DROP_EVERY = 1024 * 1024
#: How far back a drop-behind call reaches: pages still being written at the last call over them.
_DROP_WINDOW = 16 * 1024 * 1024


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
        _durable_replace(self._tmp, final)
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
        self._multipart = root / "multipart"
        self._multipart.mkdir(parents=True, exist_ok=True)
        self._remove_stale_tmp()

    @classmethod
    def from_url(cls, url: str, options: StorageOptions | None = None) -> LocalObjectStore:
        """Open a ``file:///abs/path`` (or ``file://rel/path``) store (``options`` are unused)."""
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
        self._remove_stale_multipart()

    def _remove_stale_multipart(self) -> None:
        cutoff = time.time() - _STALE_MULTIPART_SECONDS
        for d in self._multipart.iterdir():
            try:
                newest = max((p.stat().st_mtime for p in d.iterdir()), default=d.stat().st_mtime)
                if newest < cutoff:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass

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

    def size(self, sha256: str) -> int | None:
        """The blob's size, or None if missing."""
        try:
            return self.blob_path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def iter_blob(self, sha256: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """Stream the blob's file in chunks."""
        fh = open(self.blob_path(sha256), "rb")  # noqa: SIM115 - opened now so a miss raises at once

        def chunks() -> Iterator[bytes]:
            with fh:
                while data := fh.read(chunk_size):
                    yield data

        return chunks()

    def local_copy(self, sha256: str) -> AbstractContextManager[Path]:
        """The blob's own file."""
        path = self.local_path(sha256)
        if path is None:
            raise FileNotFoundError(sha256)
        return nullcontext(path)

    def presigned_url(self, sha256: str, filename: str, expires_seconds: int) -> str | None:
        """None: local files are served by the hub itself."""
        return None

    def list_blobs(self) -> Iterator[str]:
        """Every blob under ``blobs/``."""
        for sub in sorted(self._blobs.iterdir()):
            if sub.is_dir():
                for p in sorted(sub.iterdir()):
                    if _SHA_RE.match(p.name) and p.is_file():
                        yield p.name

    # -- multipart uploads (see the module docstring) -------------------------------------------------

    def _upload_dir(self, upload_id: str) -> Path:
        if not _UPLOAD_ID_RE.match(upload_id):
            raise MultipartNotFound(upload_id)
        d = self._multipart / upload_id
        if not (d / "data").is_file():
            raise MultipartNotFound(upload_id)
        return d

    def create_multipart(self, part_size: int) -> str:
        """Make ``multipart/<id>/`` with an empty ``data`` file."""
        upload_id = secrets.token_hex(16)
        d = self._multipart / upload_id
        d.mkdir()
        (d / "part_size").write_text(str(int(part_size)))
        (d / "data").touch()  # last: its presence means the directory is complete
        return upload_id

    def put_part(self, upload_id: str, number: int, data: Iterable[bytes], size: int) -> PartInfo:
        """Write the part at its offset in ``data``, then its marker (see the module docstring)."""
        d = self._upload_dir(upload_id)
        part_size = int((d / "part_size").read_text())
        marker = d / f"part-{number}"
        marker.unlink(missing_ok=True)
        fd = os.open(d / "data", os.O_WRONLY)
        try:
            offset = (number - 1) * part_size
            written = advised = 0
            for chunk in data:
                if written + len(chunk) > size:
                    raise MultipartMismatch(
                        ErrorCode.SIZE_MISMATCH.value, f"part {number} is longer than {size} bytes"
                    )
                view = memoryview(chunk)
                while view:
                    n = os.pwrite(fd, view, offset + written)
                    written += n
                    view = view[n:]
                if written - advised >= _DROP_EVERY:
                    _drop_behind(fd, offset, written)
                    advised = written
            if written != size:
                raise MultipartMismatch(
                    ErrorCode.SIZE_MISMATCH.value, f"part {number}: received {written} bytes, expected {size}"
                )
            _drop_behind(fd, offset, written)
        finally:
            os.close(fd)
        tmp = d / f".part-{number}.{secrets.token_hex(4)}"
        tmp.write_text(str(size))
        os.replace(tmp, marker)
        return PartInfo(number, size)

    def list_parts(self, upload_id: str) -> list[PartInfo]:
        """The parts whose marker exists, by number."""
        d = self._upload_dir(upload_id)
        parts = []
        for p in d.glob("part-*"):
            try:
                parts.append(PartInfo(int(p.name[5:]), int(p.read_text())))
            except (OSError, ValueError):
                continue  # replaced or removed meanwhile
        return sorted(parts, key=lambda part: part.number)

    def complete_multipart(
        self, upload_id: str, *, size: int, sha256: str, known_sha256: str | None = None
    ) -> BlobInfo:
        """Check size and sha256 of ``data``, fsync it and rename it into ``blobs/``."""
        d = self._upload_dir(upload_id)
        data = d / "data"
        try:
            actual = data.stat().st_size
            if actual != size:
                raise MultipartMismatch(
                    ErrorCode.SIZE_MISMATCH.value,
                    f"the parts hold {actual} bytes, the upload declared {size}",
                )
            digest = known_sha256 or _file_sha256(data)
            if digest != sha256:
                raise MultipartMismatch(
                    ErrorCode.CHECKSUM_MISMATCH.value,
                    f"the parts hash to {digest}, the upload declared {sha256}",
                )
            final = self.blob_path(sha256)
            if final.exists():
                return BlobInfo(sha256, size, created=False)
            with open(data, "rb+") as f:
                os.fsync(f.fileno())
                if _FADVISE is not None:  # pages still being written when their part ended: clean now
                    _FADVISE(f.fileno(), 0, size, os.POSIX_FADV_DONTNEED)
            _durable_replace(data, final)
            return BlobInfo(sha256, size, created=True)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def abort_multipart(self, upload_id: str) -> None:
        """Delete ``multipart/<id>/`` if it exists."""
        if _UPLOAD_ID_RE.match(upload_id):
            shutil.rmtree(self._multipart / upload_id, ignore_errors=True)

    def tmp_files(self) -> list[Path]:
        """In-progress (or leftover) temp files; used by tests to check atomicity."""
        return sorted(self._tmp.iterdir())

    def close(self) -> None:
        """Nothing to release."""


def _durable_replace(src: Path, final: Path) -> None:
    """Rename a fsynced file into place and fsync the directories that changed: without that, a
    machine crash could lose the rename itself (the blob's row would point at nothing)."""
    created = not final.parent.exists()
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, final)
    for directory in (final.parent, final.parent.parent) if created else (final.parent,):
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:  # a platform without directory descriptors (Windows): nothing to sync
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems refuse fsync on a directory; the rename is still atomic
        finally:
            os.close(fd)


def _drop_behind(fd: int, offset: int, end: int) -> None:
    """Start writing back the dirty pages of the part at ``offset`` written so far (``end`` bytes)
    and drop the clean ones (see the module docstring): Linux's DONTNEED does both without waiting
    for the disk. Pages still being written stay and go at a later call: each call reaches back
    :data:`_DROP_WINDOW` bytes (a part can be 1 GiB: not all of it every time)."""
    start = max(0, end - _DROP_WINDOW)
    if _FADVISE is not None and end > start:
        _FADVISE(fd, offset + start, end - start, os.POSIX_FADV_DONTNEED)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
