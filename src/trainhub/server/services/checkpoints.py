"""Checkpoints: streaming, verified, atomic uploads into content-addressed blobs.

Order of an upload (why): the body streams to a temporary object while it is hashed; size and
sha256 are verified; the blob is renamed into place; only then is the checkpoint row committed.
A failure at any step before the commit leaves no row, and the temp object is deleted, so a half
upload is never visible. A blob whose row commit fails is merely unreferenced (same content is
reused by the next upload).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool

from trainhub.protocol import API_PREFIX, CheckpointKind, ErrorCode, ModelStatus
from trainhub.server.errors import ApiError
from trainhub.server.objects import BlobInfo, ObjectStore
from trainhub.server.services import iso
from trainhub.server.services.models import mark_training, require_model
from trainhub.server.store import checkpoints as q
from trainhub.server.store import models as mq
from trainhub.server.store.engine import Store
from trainhub.server.store.tables import utcnow

__all__ = ["checkpoint_out", "get_checkpoint", "list_checkpoints", "receive_blob", "record_checkpoint"]

#: Bytes buffered before one write goes to a worker thread (fewer thread hops than per chunk).
_WRITE_BUFFER = 1024 * 1024


def checkpoint_out(model_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The API view of a checkpoint row (:class:`trainhub.protocol.CheckpointOut`)."""
    return {
        "kind": row["kind"],
        "epoch": row["epoch"],
        "is_best": bool(row["is_best"]),
        "map": row["map"],
        "size": int(row["size"]),
        "sha256": row["sha256"],
        "created_at": iso(row["created_at"]),
        "download_url": f"{API_PREFIX}/models/{model_id}/checkpoints/{row['kind']}/download",
    }


async def receive_blob(
    objects: ObjectStore,
    chunks: AsyncIterator[bytes],
    *,
    expected_size: int,
    expected_sha256: str | None,
    max_bytes: int,
) -> BlobInfo:
    """Stream ``chunks`` into a blob, verifying size and sha256 before it becomes visible.

    Raises:
        ApiError: 413 ``payload_too_large`` (more than ``max_bytes``), 400 ``size_mismatch``,
            400 ``checksum_mismatch``.
        starlette.requests.ClientDisconnect: the client went away (nothing is kept).
    """
    upload = await run_in_threadpool(objects.begin_upload)
    try:
        received = 0
        buf = bytearray()
        async for chunk in chunks:
            received += len(chunk)
            if received > max_bytes:
                raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, f"checkpoint larger than {max_bytes} bytes")
            if received > expected_size:
                raise ApiError(400, ErrorCode.SIZE_MISMATCH, "body is longer than Content-Length")
            buf += chunk
            if len(buf) >= _WRITE_BUFFER:
                await run_in_threadpool(upload.write, bytes(buf))
                buf.clear()
        if buf:
            await run_in_threadpool(upload.write, bytes(buf))
        if upload.size != expected_size:
            raise ApiError(
                400,
                ErrorCode.SIZE_MISMATCH,
                f"received {upload.size} bytes, Content-Length said {expected_size}",
            )
        digest = upload.hexdigest()
        if expected_sha256 is not None and digest != expected_sha256:
            raise ApiError(
                400, ErrorCode.CHECKSUM_MISMATCH, f"body sha256 is {digest}, header said {expected_sha256}"
            )
        return await run_in_threadpool(upload.commit)
    except BaseException:
        # Includes ClientDisconnect and cancellation: the temp object must never outlive the request.
        upload.abort()
        raise


def record_checkpoint(
    store: Store,
    model_id: str,
    kind: CheckpointKind,
    blob: BlobInfo,
    *,
    epoch: int | None,
    is_best: bool,
    map_value: float | None,
) -> dict[str, Any]:
    """Point checkpoint slot(s) at a stored blob and apply the status rules.

    ``last`` with ``is_best`` also fills ``best``; ``final`` also fills ``best`` and marks the
    model ``done`` with its final mAP.
    """
    now = utcnow()
    row = {
        "model_id": model_id,
        "kind": kind.value,
        "epoch": epoch,
        "is_best": is_best or kind in (CheckpointKind.BEST, CheckpointKind.FINAL),
        "map": map_value,
        "size": blob.size,
        "sha256": blob.sha256,
        "created_at": now,
    }
    with store.write() as conn:
        model = require_model(conn, model_id)
        q.put_checkpoint(conn, store.dialect, row)
        if kind is CheckpointKind.FINAL or (kind is CheckpointKind.LAST and is_best):
            q.put_checkpoint(conn, store.dialect, {**row, "kind": CheckpointKind.BEST.value, "is_best": True})
        if kind is CheckpointKind.FINAL:
            done = ModelStatus.DONE.value
            mq.update_model(conn, model_id, status=done, final_map=map_value, updated_at=now)
        else:
            mark_training(conn, model)
        saved = q.get_checkpoint(conn, model_id, kind.value)
    assert saved is not None
    return checkpoint_out(model_id, saved)


def list_checkpoints(store: Store, model_id: str) -> list[dict[str, Any]]:
    """A model's checkpoints (last, best, final)."""
    with store.read() as conn:
        require_model(conn, model_id)
        return [checkpoint_out(model_id, r) for r in q.list_checkpoints(conn, model_id)]


def get_checkpoint(store: Store, model_id: str, kind: str) -> Mapping[str, Any]:
    """One checkpoint row; ApiError 404 ``model_not_found`` / ``checkpoint_not_found``."""
    with store.read() as conn:
        require_model(conn, model_id)
        row = q.get_checkpoint(conn, model_id, kind)
    if row is None:
        raise ApiError(404, ErrorCode.CHECKPOINT_NOT_FOUND, f"model {model_id!r} has no {kind!r} checkpoint")
    return row
