"""Chunked, resumable checkpoint uploads: sessions of parts that become one checkpoint at ``complete``.

Life of a session (``uploads`` row; parts live in the object store's multipart upload)::

    create --(blob with that sha256 already stored)--> complete, already_present (nothing to send)
    create -> open --put part n (any order, re-sent parts replace)--> open --complete--> complete
                   --abort--> aborted        --complete, bad size or sha256--> failed

* ``create`` of a file that has an open session already (same model, kind, size, sha256 and part
  size) returns that session with its parts: a client that lost the upload id resumes anyway.
* ``complete`` checks that parts ``1..N`` are all there with the right sizes (409 ``parts_missing``),
  then the object store checks the total size and sha256 and moves the bytes to the blob; only then
  is the checkpoint row committed (:func:`trainhub.server.services.checkpoints.record_checkpoint`),
  so a half upload is never visible. A complete whose reply was lost can be sent again (200).
* sha256 without a second read: while parts arrive in order (1, 2, 3... the client's normal case) this
  process hashes them as they stream through and hands the digest to ``complete_multipart``. Any
  other order, a server restart or another worker process in between makes the store hash the
  joined parts instead. The state is one hash object per session, at most :data:`_MAX_HASHES`.
* A part streams through two threads at once: the event loop reads the body (up to :data:`_AHEAD`
  blocks ahead) while a storage thread hashes and writes it, so memory per part stays a few MiB.
* Expiry: a session that received nothing for :data:`~trainhub.protocol.UPLOAD_TTL_SECONDS` reads
  as 404 ``upload_not_found``; :func:`expire_uploads` deletes expired rows and their parts. It runs
  at server start and at every ``create`` (up to :data:`_EXPIRE_BATCH` rows each time). Finished
  sessions (complete, aborted, failed) are kept for the same TTL, so a re-sent ``complete`` still
  gets its answer, then deleted the same way.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.abc import TaskStatus

from trainhub.protocol import MAX_UPLOAD_PARTS, UPLOAD_TTL_SECONDS, CheckpointKind, ErrorCode
from trainhub.server.errors import ApiError
from trainhub.server.objects import BlobInfo, MultipartMismatch, MultipartNotFound, ObjectStore, PartInfo
from trainhub.server.services import iso
from trainhub.server.services.checkpoints import checkpoint_out, record_checkpoint
from trainhub.server.services.models import require_model
from trainhub.server.store import checkpoints as cq
from trainhub.server.store import uploads as q
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import utcnow

__all__ = [
    "abort_upload",
    "complete_upload",
    "create_upload",
    "expire_uploads",
    "get_upload",
    "part_count",
    "part_length",
    "put_part",
]

#: Bytes gathered from the request stream before one hand-over to the storage thread.
_BLOCK = 1024 * 1024
#: Blocks read from the request ahead of the storage thread, per part being received: memory per
#: part in flight is at most about ``(_AHEAD + 2) * _BLOCK`` (queued, being filled, being written).
_AHEAD = 4
#: Most running part hashes kept (one per session uploading in order right now).
_MAX_HASHES = 256
#: Expired sessions deleted per ``create``.
_EXPIRE_BATCH = 20
_TTL = timedelta(seconds=UPLOAD_TTL_SECONDS)


def part_count(size: int, part_size: int) -> int:
    """How many parts a file of ``size`` bytes has."""
    return max(1, math.ceil(size / part_size))


def part_length(size: int, part_size: int, number: int) -> int:
    """Bytes of part ``number`` (1-based): ``part_size``, except the last part."""
    count = part_count(size, part_size)
    return part_size if number < count else size - (count - 1) * part_size


class _RunningHashes:
    """sha256 of the parts received so far, per session, while they arrive in order (see the
    module docstring). A part takes the session's hash object out, so two concurrent parts never
    update one object; it is put back only after the part is stored."""

    def __init__(self, cap: int = _MAX_HASHES) -> None:
        self._cap = cap
        self._lock = threading.Lock()
        self._next: OrderedDict[str, tuple[int, Any]] = OrderedDict()

    def take(self, upload_id: str, number: int) -> Any:
        with self._lock:
            entry = self._next.pop(upload_id, None)
        if entry is not None and entry[0] == number:
            return entry[1]
        return hashlib.sha256() if number == 1 else None

    def give_back(self, upload_id: str, number: int, digest: Any) -> None:
        with self._lock:
            if upload_id in self._next:  # another part came meanwhile: the order is unknown
                del self._next[upload_id]
                return
            self._next[upload_id] = (number + 1, digest)
            while len(self._next) > self._cap:
                self._next.popitem(last=False)

    def result(self, upload_id: str, count: int) -> str | None:
        with self._lock:
            entry = self._next.pop(upload_id, None)
        return entry[1].hexdigest() if entry is not None and entry[0] == count + 1 else None

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._next.pop(upload_id, None)


_HASHES = _RunningHashes()
_COMPLETING: dict[str, threading.Lock] = {}
_COMPLETING_LOCK = threading.Lock()


def _upload_out(
    row: Mapping[str, Any], parts: list[int], checkpoint: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "upload_id": row["id"],
        "state": row["state"],
        "kind": row["kind"],
        "size": int(row["size"]),
        "sha256": row["sha256"],
        "part_size": int(row["part_size"]),
        "part_count": part_count(int(row["size"]), int(row["part_size"])),
        "parts": parts,
        "bytes_received": int(row["bytes_received"]),
        "already_present": bool(row["already_present"]),
        "expires_at": iso(row["expires_at"]),
        "checkpoint": checkpoint,
    }


def _stored_parts(objects: ObjectStore, row: Mapping[str, Any]) -> list[int]:
    """Numbers of the parts stored with the right size (a part of the wrong size is not counted)."""
    size, part_size = int(row["size"]), int(row["part_size"])
    count = part_count(size, part_size)
    try:
        parts = objects.list_parts(str(row["storage_id"]))
    except MultipartNotFound:
        return []
    return [
        p.number for p in parts if 1 <= p.number <= count and p.size == part_length(size, part_size, p.number)
    ]


def _current_checkpoint(store: Store, row: Mapping[str, Any]) -> dict[str, Any] | None:
    with store.read() as conn:
        slot = cq.get_checkpoint(conn, row["model_id"], row["kind"])
    if slot is None or slot["sha256"] != row["sha256"]:
        return None
    return checkpoint_out(str(row["model_id"]), slot)


def _require(store: Store, model_id: str, upload_id: str) -> Mapping[str, Any]:
    """The session of this model; 404 ``upload_not_found`` if unknown, of another model or expired."""
    with store.read() as conn:
        row = q.get_upload(conn, upload_id)
        if row is None or row["model_id"] != model_id:
            require_model(conn, model_id)  # an unknown model says so
    if row is None or row["model_id"] != model_id:
        raise ApiError(404, ErrorCode.UPLOAD_NOT_FOUND, f"model {model_id!r} has no upload {upload_id!r}")
    if row["state"] == "open" and row["expires_at"] <= utcnow():
        raise ApiError(404, ErrorCode.UPLOAD_NOT_FOUND, f"upload {upload_id!r} expired; start a new one")
    return row


def _not_open(row: Mapping[str, Any]) -> ApiError:
    return ApiError(
        409, ErrorCode.UPLOAD_NOT_OPEN, f"upload {row['id']!r} is {row['state']}; start a new one"
    )


def expire_uploads(store: Store, objects: ObjectStore, now: datetime | None = None, limit: int = 1000) -> int:
    """Delete up to ``limit`` expired sessions and the parts of the open ones; how many."""
    now = now or utcnow()
    with store.read() as conn:
        rows = q.expired_uploads(conn, now, limit)
    for row in rows:
        if row["state"] == "open" and row["storage_id"]:
            objects.abort_multipart(str(row["storage_id"]))
        _HASHES.forget(str(row["id"]))
        with store.write() as conn:
            q.delete_upload(conn, row["id"])
    return len(rows)


def create_upload(
    store: Store,
    objects: ObjectStore,
    model_id: str,
    *,
    kind: CheckpointKind,
    size: int,
    sha256: str,
    part_size: int,
    epoch: int | None,
    is_best: bool,
    map_value: float | None,
    max_bytes: int,
) -> tuple[int, dict[str, Any]]:
    """Start (or resume) a session; ``(HTTP status, UploadOut)``.

    201: a new session. 200: the content was already stored (``already_present``, the checkpoint is
    recorded now) or an open session of the same file was found (its parts are listed).

    Raises:
        ApiError: 404 ``model_not_found``, 413 ``payload_too_large``, 422 ``validation_error``
            (more than :data:`~trainhub.protocol.MAX_UPLOAD_PARTS` parts).
    """
    if size > max_bytes:
        raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, f"checkpoint larger than {max_bytes} bytes")
    if part_count(size, part_size) > MAX_UPLOAD_PARTS:
        raise ApiError(
            422,
            ErrorCode.VALIDATION_ERROR,
            f"{part_count(size, part_size)} parts: at most {MAX_UPLOAD_PARTS}; use a larger part_size",
        )
    expire_uploads(store, objects, limit=_EXPIRE_BATCH)
    now = utcnow()
    meta = {"epoch": epoch, "is_best": is_best, "map": map_value}
    with store.read() as conn:
        require_model(conn, model_id)
        existing = q.find_open_upload(conn, model_id, kind.value, size, sha256, part_size, now)
    if existing is not None:
        with store.write() as conn:
            q.update_upload(conn, existing["id"], updated_at=now, expires_at=now + _TTL, **meta)
            row = q.get_upload(conn, existing["id"])
        assert row is not None
        return 200, _upload_out(row, _stored_parts(objects, row))
    row = {
        "id": secrets.token_hex(16),
        "model_id": model_id,
        "kind": kind.value,
        "size": size,
        "sha256": sha256,
        "part_size": part_size,
        "storage_id": None,
        "state": "open",
        "bytes_received": 0,
        "already_present": False,
        "created_at": now,
        "updated_at": now,
        "expires_at": now + _TTL,
        **meta,
    }
    with store.read() as conn:
        known = cq.blob_known_to_owner(conn, model_id, sha256)
    if known and objects.exists(sha256):
        # Identical content is stored once: point the slot at the blob, nothing to send. Only
        # for content the same owner already has (no cross-tenant "do you have this file?").
        checkpoint = record_checkpoint(
            store, model_id, kind, BlobInfo(sha256, size, created=False),
            epoch=epoch, is_best=is_best, map_value=map_value,
        )  # fmt: skip
        row.update(state="complete", already_present=True)
        with store.write() as conn:
            q.insert_upload(conn, row)
        return 200, _upload_out(row, [], checkpoint)
    row["storage_id"] = objects.create_multipart(part_size)
    try:
        with store.write() as conn:
            q.insert_upload(conn, row)
    except BaseException:
        objects.abort_multipart(str(row["storage_id"]))
        raise
    return 201, _upload_out(row, [])


def get_upload(store: Store, objects: ObjectStore, model_id: str, upload_id: str) -> dict[str, Any]:
    """A session with the parts the server has (``GET``)."""
    row = _require(store, model_id, upload_id)
    if row["state"] == "complete":
        return _upload_out(row, [], _current_checkpoint(store, row))
    parts = _stored_parts(objects, row) if row["state"] == "open" else []
    return _upload_out(row, parts)


async def put_part(
    store: Store,
    objects: ObjectStore,
    model_id: str,
    upload_id: str,
    number: int,
    length: int,
    chunks: AsyncIterator[bytes],
) -> dict[str, Any]:
    """Stream one part's body into the object store (at most ~6 MiB of it in memory, see :data:`_AHEAD`).

    Raises:
        ApiError: 404 ``upload_not_found``, 409 ``upload_not_open``, 400 ``part_out_of_range``,
            400 ``size_mismatch`` (Content-Length, or the body, is not the part's size).
        starlette.requests.ClientDisconnect: the client went away (the part is not stored).
    """
    row = await anyio.to_thread.run_sync(_require, store, model_id, upload_id)
    if row["state"] != "open":
        raise _not_open(row)
    size, part_size = int(row["size"]), int(row["part_size"])
    count = part_count(size, part_size)
    if not 1 <= number <= count:
        raise ApiError(400, ErrorCode.PART_OUT_OF_RANGE, f"part {number}: this upload has parts 1..{count}")
    expected = part_length(size, part_size, number)
    if length != expected:
        raise ApiError(
            400,
            ErrorCode.SIZE_MISMATCH,
            f"part {number} must be {expected} bytes, Content-Length is {length}",
        )
    stream = chunks.__aiter__()
    digest = _HASHES.take(upload_id, number)
    received = 0
    send, receive = anyio.create_memory_object_stream[list[bytes]](_AHEAD)
    failure: list[Exception] = []

    async def next_block() -> list[bytes]:
        # The body's own chunks, not joined: joining is one more copy of every byte, on the event
        # loop, which is the busiest thread of an upload.
        block: list[bytes] = []
        n = 0
        async for chunk in stream:
            if chunk:
                block.append(chunk)
                n += len(chunk)
                if n >= _BLOCK:
                    break
        return block

    async def produce(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        # On the event loop, ahead of the storage thread: the socket is read while the thread
        # hashes and writes (without the queue the two take turns). An error here (the client
        # went away) is raised by the storage thread, out of objects.put_part. Started only once
        # inside ``async with send``: however it ends, even cancelled, the thread sees the end.
        async with send:
            task_status.started()
            try:
                while block := await next_block():
                    await send.send(block)
            except Exception as exc:
                failure.append(exc)

    def blocks() -> Iterator[bytes]:
        # Runs on the storage thread; one hop to the event loop per block.
        nonlocal received
        while True:
            try:
                block = anyio.from_thread.run(receive.receive)
            except anyio.EndOfStream:
                if failure:
                    raise failure[0] from None
                return
            for chunk in block:
                received += len(chunk)
                if digest is not None:
                    digest.update(chunk)
                yield chunk

    storage_id = str(row["storage_id"])
    info: PartInfo | None = None
    error: Exception | None = None
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(produce)
            try:
                info = await anyio.to_thread.run_sync(objects.put_part, storage_id, number, blocks(), length)
            except Exception as exc:  # re-raised below: the task group would wrap it in a group
                error = exc
            tg.cancel_scope.cancel()  # put_part stopped early: the producer may wait on a full queue
    finally:
        receive.close()
        if received:
            now = utcnow()
            await anyio.to_thread.run_sync(_count_received, store, upload_id, received, now)
    if isinstance(error, MultipartNotFound):  # aborted or completed meanwhile
        raise _not_open({**row, "state": "closed"}) from error
    if isinstance(error, MultipartMismatch):
        raise ApiError(400, ErrorCode(error.code), str(error)) from error
    if error is not None:
        raise error
    assert info is not None
    if digest is not None:
        _HASHES.give_back(upload_id, number, digest)
    return {"number": info.number, "size": info.size}


def _count_received(store: Store, upload_id: str, n: int, now: datetime) -> None:
    with store.write() as conn:
        q.add_bytes_received(conn, upload_id, n, now, now + _TTL)


def complete_upload(store: Store, objects: ObjectStore, model_id: str, upload_id: str) -> dict[str, Any]:
    """Verify and publish a session's checkpoint; a repeated complete answers the same.

    Raises:
        ApiError: 404 ``upload_not_found``, 409 ``upload_not_open`` (aborted or failed), 409
            ``parts_missing``, 400 ``size_mismatch`` / ``checksum_mismatch`` (the session is then
            ``failed``: start a new one).
    """
    with _COMPLETING_LOCK:
        lock = _COMPLETING.setdefault(upload_id, threading.Lock())
    with lock:
        try:
            return _complete(store, objects, model_id, upload_id)
        finally:
            with _COMPLETING_LOCK:
                _COMPLETING.pop(upload_id, None)


def _complete(store: Store, objects: ObjectStore, model_id: str, upload_id: str) -> dict[str, Any]:
    row = _require(store, model_id, upload_id)
    if row["state"] == "complete":
        return _upload_out(row, [], _current_checkpoint(store, row))
    if row["state"] != "open":
        raise _not_open(row)
    size, part_size, sha256 = int(row["size"]), int(row["part_size"]), str(row["sha256"])
    count = part_count(size, part_size)
    storage_id = str(row["storage_id"])
    try:
        have = set(_stored_parts_strict(objects, storage_id, size, part_size))
        missing = [n for n in range(1, count + 1) if n not in have]
        if missing:
            shown = ", ".join(map(str, missing[:20])) + (
                f" (and {len(missing) - 20} more)" if len(missing) > 20 else ""
            )
            raise ApiError(409, ErrorCode.PARTS_MISSING, f"parts missing: {shown}")
        blob = objects.complete_multipart(
            storage_id, size=size, sha256=sha256, known_sha256=_HASHES.result(upload_id, count)
        )
    except MultipartNotFound:
        # A complete that died after moving the bytes but before recording them: finish the job.
        if not objects.exists(sha256):
            _set_state(store, upload_id, "failed")
            raise ApiError(
                409, ErrorCode.UPLOAD_NOT_OPEN, f"upload {upload_id!r} lost its parts; start a new one"
            ) from None
        blob = BlobInfo(sha256, size, created=False)
    except MultipartMismatch as exc:
        _set_state(store, upload_id, "failed")
        raise ApiError(400, ErrorCode(exc.code), f"{exc}; the upload failed, start a new one") from exc
    checkpoint = record_checkpoint(
        store, model_id, CheckpointKind(row["kind"]), blob,
        epoch=row["epoch"], is_best=bool(row["is_best"]), map_value=row["map"],
    )  # fmt: skip
    _set_state(store, upload_id, "complete")
    return _upload_out({**row, "state": "complete"}, [], checkpoint)


def _stored_parts_strict(objects: ObjectStore, storage_id: str, size: int, part_size: int) -> list[int]:
    count = part_count(size, part_size)
    return [
        p.number
        for p in objects.list_parts(storage_id)
        if 1 <= p.number <= count and p.size == part_length(size, part_size, p.number)
    ]


def _set_state(store: Store, upload_id: str, state: str) -> None:
    now = utcnow()
    with store.write() as conn:
        q.update_upload(conn, upload_id, state=state, updated_at=now, expires_at=now + _TTL)


def abort_upload(store: Store, objects: ObjectStore, model_id: str, upload_id: str) -> None:
    """Abort an open session and delete its parts; aborting twice is fine.

    Raises:
        ApiError: 404 ``upload_not_found``, 409 ``upload_not_open`` (already complete).
    """
    row = _require(store, model_id, upload_id)
    if row["state"] == "complete":
        raise _not_open(row)
    if row["state"] == "open":
        objects.abort_multipart(str(row["storage_id"]))
        _HASHES.forget(upload_id)
        _set_state(store, upload_id, "aborted")
