"""S3-compatible object store (``s3://bucket/prefix``): AWS S3, MinIO, Ceph RGW, R2, moto...

Layout under ``<prefix>/``: blobs at ``blobs/<sha[:2]>/<sha>`` (as on a local disk) and uploads
in progress at ``tmp/<random>``.

An upload (why this order): the sha256 -- and so the final key -- is known only at the end, so the
bytes go to ``tmp/<random>`` as a real S3 multipart upload, one part per 8 MiB as they arrive
(memory stays flat: at most one part is buffered). An incomplete multipart upload is invisible
to readers. On commit the hub checks the digest, completes the upload, copies it server-side to
``blobs/<sha>`` (no bytes through the hub) and deletes the temp object; if the blob already exists
the upload is aborted instead. An upload smaller than one part skips all that: it is one
``PutObject`` straight to its final key, after the digest is known. S3's ``PutObject`` and
``CompleteMultipartUpload`` are atomic, so a reader sees either no blob or the whole blob.

Resumable (chunked) uploads map 1:1 onto S3 multipart uploads: the storage id is 32 random hex
characters naming the key ``tmp/mp-<id>``; any worker finds the S3 ``UploadId`` of that key with
``ListMultipartUploads`` (cached per process: nothing a worker restart could lose). Each part is
spooled to a temp file as it streams in (so memory stays flat and a retried ``UploadPart`` can
re-read it), then uploaded as S3 part ``n``; a re-sent part replaces the earlier one, as in S3.
``complete_multipart`` checks the part sizes, completes the S3 upload, checks the sha256 (the
caller's streamed digest, or by reading the object back), then copies it server-side to
``blobs/<sha>`` -- or deletes it on a mismatch, so a bad upload never becomes visible.

Leftovers of a crashed worker (incomplete multipart uploads, ``tmp/`` objects) are never read;
docs/deployment.md gives the bucket lifecycle rule that expires them.

Endpoint and credentials: :class:`trainhub.server.objects.StorageOptions` (flags and
``TRAINHUB_S3_*``), else boto3's usual chain (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``~/.aws/``, an instance role). Only the server
imports boto3; the client never does.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from trainhub.protocol import ErrorCode
from trainhub.server.errors import ConfigError
from trainhub.server.objects import (
    READ_CHUNK,
    BlobInfo,
    MultipartMismatch,
    MultipartNotFound,
    PartInfo,
    StorageOptions,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = ["PART_SIZE", "S3ObjectStore", "S3Upload"]

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
#: Bytes per multipart part (S3's minimum is 5 MiB; 10,000 parts make an 80 GiB object).
PART_SIZE = 8 * 1024 * 1024


def _is_missing(exc: Exception) -> bool:
    response: Any = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


class S3Upload:
    """An upload to ``tmp/<random>``; see :class:`trainhub.server.objects.Upload`."""

    def __init__(self, store: S3ObjectStore, tmp_key: str) -> None:
        self._store = store
        self._key = tmp_key
        self._hash = hashlib.sha256()
        self._size = 0
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._done = False

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    def write(self, data: bytes) -> None:
        """Hash a chunk; send every full part to S3 (so at most one part is held in memory)."""
        assert not self._done, "upload already finished"
        self._hash.update(data)
        self._size += len(data)
        self._buf += data
        while len(self._buf) >= PART_SIZE:
            self._send_part(bytes(self._buf[:PART_SIZE]))
            del self._buf[:PART_SIZE]

    def _send_part(self, body: bytes) -> None:
        s3, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            self._upload_id = s3.create_multipart_upload(Bucket=bucket, Key=self._key)["UploadId"]
        number = len(self._parts) + 1
        etag = s3.upload_part(
            Bucket=bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body
        )["ETag"]
        self._parts.append({"ETag": etag, "PartNumber": number})

    def hexdigest(self) -> str:
        """sha256 hex of the bytes written so far."""
        return self._hash.hexdigest()

    def commit(self) -> BlobInfo:
        """Make the blob visible at ``blobs/<sha>`` (see the module docstring for the steps)."""
        assert not self._done, "upload already finished"
        s3, bucket = self._store.client, self._store.bucket
        sha = self.hexdigest()
        final = self._store.blob_key(sha)
        try:
            if self._store.size(sha) is not None:
                self.abort()
                return BlobInfo(sha, self._size, created=False)
            if self._upload_id is None:
                s3.put_object(Bucket=bucket, Key=final, Body=bytes(self._buf))
            else:
                if self._buf:
                    self._send_part(bytes(self._buf))
                s3.complete_multipart_upload(
                    Bucket=bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
                self._upload_id = None
                # Managed copy: a multipart server-side copy above 5 GiB, a plain CopyObject below.
                s3.copy({"Bucket": bucket, "Key": self._key}, bucket, final)
                s3.delete_object(Bucket=bucket, Key=self._key)
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._buf = bytearray()
        return BlobInfo(sha, self._size, created=True)

    def abort(self) -> None:
        """Abort the multipart upload (or delete the completed temp object); idempotent."""
        self._done = True
        self._buf = bytearray()
        s3, bucket = self._store.client, self._store.bucket
        upload_id, self._upload_id = self._upload_id, None
        try:
            if upload_id is not None:
                s3.abort_multipart_upload(Bucket=bucket, Key=self._key, UploadId=upload_id)
            elif self._parts:
                s3.delete_object(Bucket=bucket, Key=self._key)
        except Exception:
            pass
        self._parts = []


class S3ObjectStore:
    """Blobs in an S3 bucket under a prefix; see :class:`trainhub.server.objects.ObjectStore`."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._upload_ids: dict[str, str] = {}  # storage id -> S3 UploadId (a cache; S3 is the truth)
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, options: StorageOptions | None = None) -> S3ObjectStore:
        """Open ``s3://bucket[/prefix]``; the bucket must exist (checked here, so a typo fails at start).

        Raises:
            ConfigError: a malformed URL, boto3 not installed, or the bucket is not reachable.
        """
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(f"not an s3://bucket/prefix URL: {url!r}")
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise ConfigError("s3:// storage needs boto3: pip install 'trainhub[s3]'") from exc
        opts = options or StorageOptions()
        endpoint = (
            opts.s3_endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        config = Config(
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=64,
            # MinIO, moto and most self-hosted services want path-style URLs on a custom endpoint.
            s3={"addressing_style": "path" if endpoint else "auto"},
        )
        session = boto3.session.Session()
        client = session.client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=opts.s3_region or None,
            aws_access_key_id=opts.s3_access_key_id or None,
            aws_secret_access_key=opts.s3_secret_access_key or None,
            config=config,
        )
        store = cls(client, parsed.netloc, unquote(parsed.path))
        try:
            client.head_bucket(Bucket=store.bucket)
        except Exception as exc:  # botocore raises ClientError, EndpointConnectionError, NoCredentials...
            where = f" at {endpoint}" if endpoint else ""
            raise ConfigError(f"cannot reach S3 bucket {store.bucket!r}{where}: {exc}") from exc
        return store

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def blob_key(self, sha256: str) -> str:
        """The key of a blob (whether or not it exists)."""
        if not _SHA_RE.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self._key(f"blobs/{sha256[:2]}/{sha256}")

    def begin_upload(self) -> S3Upload:
        """Start an upload to a fresh ``tmp/`` key."""
        return S3Upload(self, self._key(f"tmp/upload-{secrets.token_hex(12)}"))

    def local_path(self, sha256: str) -> Path | None:
        """None: blobs are not on a local filesystem."""
        return None

    def size(self, sha256: str) -> int | None:
        """``HeadObject``'s size, or None if the blob is not stored."""
        try:
            return int(
                self.client.head_object(Bucket=self.bucket, Key=self.blob_key(sha256))["ContentLength"]
            )
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise

    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        return self.size(sha256) is not None

    def iter_blob(self, sha256: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """Stream the object's body (``GetObject``), ``chunk_size`` bytes at a time."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.blob_key(sha256))["Body"]
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(sha256) from exc
            raise

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(chunk_size)
            finally:
                body.close()

        return chunks()

    def local_copy(self, sha256: str) -> AbstractContextManager[Path]:
        """Download the blob to a temp file for the ``with`` block (streamed)."""
        return self._local_copy(sha256)

    @contextmanager
    def _local_copy(self, sha256: str) -> Iterator[Path]:
        chunks = self.iter_blob(sha256)
        with tempfile.TemporaryDirectory(prefix="trainhub-blob-") as tmp:
            path = Path(tmp) / sha256
            with open(path, "wb") as fh:
                for data in chunks:
                    fh.write(data)
            yield path

    def presigned_url(self, sha256: str, filename: str, expires_seconds: int) -> str | None:
        """A presigned ``GetObject`` URL that also names the download."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "download"
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.blob_key(sha256),
                "ResponseContentDisposition": f'attachment; filename="{safe}"',
            },
            ExpiresIn=expires_seconds,
        )

    def list_blobs(self) -> Iterator[str]:
        """Every blob under ``blobs/`` (paginated ``ListObjectsV2``)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("blobs/")):
            for obj in page.get("Contents", []):
                name = obj.get("Key", "").rsplit("/", 1)[-1]
                if _SHA_RE.match(name):
                    yield name

    # -- resumable uploads: S3 multipart (see the module docstring) ---------------------------------

    def _mp_key(self, upload_id: str) -> str:
        if not _UPLOAD_ID_RE.match(upload_id):
            raise MultipartNotFound(upload_id)
        return self._key(f"tmp/mp-{upload_id}")

    def _s3_upload_id(self, upload_id: str) -> str:
        key = self._mp_key(upload_id)
        with self._lock:
            cached = self._upload_ids.get(upload_id)
        if cached is not None:
            return cached
        listed = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        found = [u.get("UploadId", "") for u in listed.get("Uploads", []) if u.get("Key") == key]
        if not found or not found[0]:
            raise MultipartNotFound(upload_id)
        with self._lock:
            self._upload_ids[upload_id] = found[0]
        return found[0]

    def _forget(self, upload_id: str) -> None:
        with self._lock:
            self._upload_ids.pop(upload_id, None)

    def create_multipart(self, part_size: int) -> str:
        """``CreateMultipartUpload`` on ``tmp/mp-<id>``; returns ``<id>``."""
        upload_id = secrets.token_hex(16)
        created = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._mp_key(upload_id))
        with self._lock:
            self._upload_ids[upload_id] = created["UploadId"]
        return upload_id

    def put_part(self, upload_id: str, number: int, data: Iterable[bytes], size: int) -> PartInfo:
        """Spool ``data`` to a temp file (checking its length), then ``UploadPart`` it as part ``number``."""
        s3_id = self._s3_upload_id(upload_id)
        with tempfile.TemporaryFile(prefix="trainhub-part-") as fh:
            written = 0
            for chunk in data:
                written += len(chunk)
                if written > size:
                    raise MultipartMismatch(
                        ErrorCode.SIZE_MISMATCH.value, f"part {number} is longer than {size} bytes"
                    )
                fh.write(chunk)
            if written != size:
                raise MultipartMismatch(
                    ErrorCode.SIZE_MISMATCH.value, f"part {number}: received {written} bytes, expected {size}"
                )
            fh.seek(0)
            try:
                self.client.upload_part(
                    Bucket=self.bucket,
                    Key=self._mp_key(upload_id),
                    UploadId=s3_id,
                    PartNumber=number,
                    Body=fh,
                    ContentLength=size,
                )
            except Exception as exc:
                if _is_missing(exc):
                    self._forget(upload_id)
                    raise MultipartNotFound(upload_id) from exc
                raise
        return PartInfo(number, size)

    def _list_s3_parts(self, upload_id: str) -> list[tuple[int, int, str]]:
        s3_id = self._s3_upload_id(upload_id)
        parts: list[tuple[int, int, str]] = []
        marker = 0
        try:
            while True:
                page = self.client.list_parts(
                    Bucket=self.bucket, Key=self._mp_key(upload_id), UploadId=s3_id, PartNumberMarker=marker
                )
                for p in page.get("Parts", []):
                    parts.append((int(p.get("PartNumber", 0)), int(p.get("Size", 0)), str(p.get("ETag", ""))))
                if not page.get("IsTruncated"):
                    break
                marker = int(page.get("NextPartNumberMarker", 0))
        except Exception as exc:
            if _is_missing(exc):
                self._forget(upload_id)
                raise MultipartNotFound(upload_id) from exc
            raise
        return sorted(parts)

    def list_parts(self, upload_id: str) -> list[PartInfo]:
        """``ListParts``: the parts S3 holds, by number."""
        return [PartInfo(n, size) for n, size, _ in self._list_s3_parts(upload_id)]

    def complete_multipart(
        self, upload_id: str, *, size: int, sha256: str, known_sha256: str | None = None
    ) -> BlobInfo:
        """Complete the S3 upload, verify size and sha256, then copy it to ``blobs/<sha>``."""
        key = self._mp_key(upload_id)
        parts = self._list_s3_parts(upload_id)
        total = sum(p[1] for p in parts)
        if total != size or [p[0] for p in parts] != list(range(1, len(parts) + 1)):
            self.abort_multipart(upload_id)
            raise MultipartMismatch(
                ErrorCode.SIZE_MISMATCH.value, f"the parts hold {total} bytes, the upload declared {size}"
            )
        s3_id = self._s3_upload_id(upload_id)
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=s3_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, _, etag in parts]},
        )
        self._forget(upload_id)
        try:
            digest = known_sha256 or self._hash_key(key)
            if digest != sha256:
                raise MultipartMismatch(
                    ErrorCode.CHECKSUM_MISMATCH.value,
                    f"the parts hash to {digest}, the upload declared {sha256}",
                )
            if self.size(sha256) is not None:
                return BlobInfo(sha256, size, created=False)
            self.client.copy({"Bucket": self.bucket, "Key": key}, self.bucket, self.blob_key(sha256))
            return BlobInfo(sha256, size, created=True)
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def _hash_key(self, key: str) -> str:
        h = hashlib.sha256()
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            for chunk in body.iter_chunks(READ_CHUNK):
                h.update(chunk)
        finally:
            body.close()
        return h.hexdigest()

    def abort_multipart(self, upload_id: str) -> None:
        """``AbortMultipartUpload``; idempotent (an unknown id is fine)."""
        if not _UPLOAD_ID_RE.match(upload_id):
            return
        try:
            s3_id = self._s3_upload_id(upload_id)
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._mp_key(upload_id), UploadId=s3_id
            )
        except MultipartNotFound:
            pass
        except Exception as exc:
            if not _is_missing(exc):
                raise
        finally:
            self._forget(upload_id)

    def tmp_keys(self) -> list[str]:
        """Keys under ``tmp/`` plus keys of incomplete multipart uploads (tests check atomicity)."""
        prefix = self._key("tmp/")
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        keys = [o.get("Key", "") for o in listed.get("Contents", [])]
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        keys += [u.get("Key", "") for u in uploads.get("Uploads", [])]
        return sorted(keys)

    def close(self) -> None:
        """Close the client's connection pool."""
        self.client.close()
