"""How one upload part streams from the request body to the object store (services/uploads.py put_part,
objects/local.py): byte-exact through odd chunk sizes, read ahead of the storage thread but bounded,
a client gone mid-part stores nothing, and the local store's drop-behind covers what it wrote."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from starlette.requests import ClientDisconnect

from trainhub.server.errors import ApiError
from trainhub.server.objects import PartInfo, local
from trainhub.server.objects.local import LocalObjectStore
from trainhub.server.services import uploads as svc

MIB = 1024 * 1024
PART = 5 * MIB  # the protocol's smallest part size


@pytest.fixture
def objects(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch, objects: LocalObjectStore) -> dict[str, Any]:
    """An open session of a 2-part file, without a database: the row is what put_part reads."""
    row = {
        "id": os.urandom(16).hex(),
        "model_id": "m",
        "state": "open",
        "size": 2 * PART,
        "part_size": PART,
        "storage_id": objects.create_multipart(PART),
        "expires_at": datetime.max,
    }
    counted: list[int] = []
    monkeypatch.setattr(svc, "_require", lambda store, model_id, upload_id: row)
    monkeypatch.setattr(svc, "_count_received", lambda store, upload_id, n, now: counted.append(n))
    return {"row": row, "counted": counted}


def _chunks_of(data: bytes, sizes: Iterable[int]) -> Iterator[bytes]:
    pos = 0
    for n in sizes:
        if pos >= len(data):
            return
        yield data[pos : pos + n]
        pos += n
    yield data[pos:]


async def _body(chunks: Iterable[bytes], pulled: list[int] | None = None) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if pulled is not None:
            pulled.append(len(chunk))
        yield chunk
    yield b""  # starlette's request.stream() ends with an empty chunk


def _put(objects: Any, session: dict[str, Any], number: int, body: AsyncIterator[bytes]) -> dict[str, Any]:
    row = session["row"]

    async def run() -> dict[str, Any]:
        return await svc.put_part(None, objects, "m", row["id"], number, PART, body)  # type: ignore[arg-type]

    return anyio.run(run)


def test_odd_chunk_sizes_arrive_byte_exact_and_feed_the_running_sha256(
    objects: LocalObjectStore, session: dict[str, Any]
) -> None:
    data = os.urandom(2 * PART)
    sizes = [1, 7 * 1024, 300_001, 65_536, MIB + 3] * 20  # blocks of several chunks, chunks across blocks
    for n in (1, 2):
        part = data[(n - 1) * PART : n * PART]
        assert _put(objects, session, n, _body(_chunks_of(part, sizes))) == {"number": n, "size": PART}
    storage_id = session["row"]["storage_id"]
    assert [p.number for p in objects.list_parts(storage_id)] == [1, 2]
    assert session["counted"] == [PART, PART]
    # Parts in order: the service hashed them on the way, complete needs no second read.
    known = svc._HASHES.result(session["row"]["id"], 2)
    assert known == hashlib.sha256(data).hexdigest()
    blob = objects.complete_multipart(storage_id, size=len(data), sha256=known, known_sha256=known)
    assert objects.blob_path(blob.sha256).read_bytes() == data


class _PausingStore:
    """The local store, but after the first chunk of a part the storage thread waits until every
    task on the event loop is blocked: how far the body was read by then is the read-ahead."""

    def __init__(self, inner: LocalObjectStore, pulled: list[int]) -> None:
        self.inner = inner
        self.pulled = pulled
        self.ahead = 0

    def put_part(self, upload_id: str, number: int, data: Iterable[bytes], size: int) -> PartInfo:
        it = iter(data)
        first = next(it)
        anyio.from_thread.run(anyio.wait_all_tasks_blocked)
        self.ahead = sum(self.pulled) - len(first)
        return self.inner.put_part(upload_id, number, chain([first], it), size)


def test_the_body_is_read_ahead_of_the_storage_thread_but_bounded(
    objects: LocalObjectStore, session: dict[str, Any]
) -> None:
    part = os.urandom(PART)
    pulled: list[int] = []
    store = _PausingStore(objects, pulled)
    body = _body(_chunks_of(part, [64 * 1024] * (PART // (64 * 1024))), pulled)
    assert _put(store, session, 1, body) == {"number": 1, "size": PART}
    # While the storage thread held one block, the event loop kept reading (the two overlap)...
    assert store.ahead >= svc._AHEAD * svc._BLOCK
    # ...up to a full queue and one block being filled: memory stays flat whatever the part size.
    assert store.ahead <= (svc._AHEAD + 1) * svc._BLOCK


def test_a_client_gone_mid_part_raises_client_disconnect_and_the_part_is_not_listed(
    objects: LocalObjectStore, session: dict[str, Any]
) -> None:
    def chunks() -> Iterator[bytes]:
        yield from _chunks_of(os.urandom(2 * MIB + 5), [256 * 1024] * 9)
        raise ClientDisconnect()

    with pytest.raises(ClientDisconnect):
        _put(objects, session, 1, _body(chunks()))
    assert objects.list_parts(session["row"]["storage_id"]) == []
    assert session["counted"] == [2 * MIB]  # the whole blocks that reached the disk, not the cut one


def test_a_part_of_an_upload_gone_meanwhile_is_409_and_the_body_is_left_unread(
    objects: LocalObjectStore, session: dict[str, Any]
) -> None:
    objects.abort_multipart(session["row"]["storage_id"])
    pulled: list[int] = []
    body = _body(_chunks_of(os.urandom(PART), [MIB] * 5), pulled)
    with pytest.raises(ApiError) as err:
        _put(objects, session, 1, body)
    assert (err.value.status, err.value.code) == (409, "upload_not_open")
    assert sum(pulled) <= (svc._AHEAD + 1) * svc._BLOCK


def test_drop_behind_advises_every_byte_a_part_wrote_and_complete_the_whole_file(
    monkeypatch: pytest.MonkeyPatch, objects: LocalObjectStore
) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(
        local, "_FADVISE", lambda fd, offset, length, advice: calls.append((offset, offset + length))
    )
    data = os.urandom(PART + 123)
    upload_id = objects.create_multipart(PART)
    objects.put_part(upload_id, 2, _chunks_of(data[PART:], []), 123)
    assert calls == [(PART, PART + 123)]
    calls.clear()
    objects.put_part(upload_id, 1, _chunks_of(data[:PART], [300_000] * 20), PART)
    # About one call per MiB written (whatever the chunk size), together covering the whole part:
    # each reaches back to the start of the part or over a window of pages that may still be in flight.
    ends = [end for _, end in calls]
    assert ends == sorted(ends) and ends[-1] == PART
    assert PART // MIB <= len(calls) <= PART // MIB + 1
    assert all(b - a <= MIB + 300_000 for a, b in zip([0, *ends], ends, strict=False))
    assert all(start == 0 or end - start == local._DROP_WINDOW for start, end in calls)
    calls.clear()
    sha = hashlib.sha256(data).hexdigest()
    objects.complete_multipart(upload_id, size=len(data), sha256=sha)
    assert calls == [(0, len(data))]
    assert objects.blob_path(sha).read_bytes() == data


def test_without_fadvise_the_local_store_still_stores_parts(
    monkeypatch: pytest.MonkeyPatch, objects: LocalObjectStore
) -> None:
    monkeypatch.setattr(local, "_FADVISE", None)  # macOS, Windows
    data = os.urandom(PART)
    upload_id = objects.create_multipart(PART)
    objects.put_part(upload_id, 1, [data], PART)
    sha = hashlib.sha256(data).hexdigest()
    assert objects.complete_multipart(upload_id, size=PART, sha256=sha).created
    assert objects.blob_path(sha).read_bytes() == data


def _recording_fsync(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_a_blob_and_the_directories_of_its_rename_are_fsynced(
    objects: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = _recording_fsync(monkeypatch)
    upload = objects.begin_upload()
    upload.write(b"weights")
    info = upload.commit()
    final = objects.blob_path(info.sha256)
    # The data (its temp file) first, then the new fan-out directory and the one that gained it.
    assert "upload-" in synced[0]
    assert synced[1:] == [str(final.parent), str(final.parent.parent)]


def test_into_an_existing_directory_only_that_directory_is_fsynced(
    objects: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"more weights"
    parent = objects.blob_path(hashlib.sha256(content).hexdigest()).parent
    parent.mkdir(parents=True, exist_ok=True)
    synced = _recording_fsync(monkeypatch)
    upload = objects.begin_upload()
    upload.write(content)
    upload.commit()
    assert synced[1:] == [str(parent)]


def test_a_multipart_blob_is_fsynced_with_its_directory(
    objects: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(PART + 123)
    storage_id = objects.create_multipart(PART)
    objects.put_part(storage_id, 1, [data[:PART]], PART)
    objects.put_part(storage_id, 2, [data[PART:]], 123)
    synced = _recording_fsync(monkeypatch)
    sha = hashlib.sha256(data).hexdigest()
    info = objects.complete_multipart(storage_id, size=len(data), sha256=sha)
    assert info.created
    assert str(objects.blob_path(sha).parent) in synced
    assert objects.blob_path(sha).read_bytes() == data
