"""Chunked, resumable checkpoint uploads: the client half of ``/api/v1/models/{id}/uploads``.

The worker hands every checkpoint of :data:`CHUNKED_MIN_BYTES` (one default part, 8 MiB) or more to
:meth:`ChunkedUploader.upload`; smaller files keep the single streamed ``PUT`` (a failed one is sent
again whole, which is never more than one part's worth of bytes either).

One call of :meth:`~ChunkedUploader.upload` is one *attempt* in the worker's retry loop: it goes as
far as it can and returns the first failure as a :class:`~trainhub.client.transport.Result`, so the
worker's backoff, ``Retry-After`` and outage handling apply unchanged. An attempt:

1. ``stat`` the file. If the spool item holds a session for the same size and mtime, ask the server
   which parts it has (``GET``; the server's list wins over the spool's). Otherwise hash the file and
   ``POST`` a new session; the server answers ``already_present`` (identical content is stored once:
   nothing to send) or the session, which is written into the spool item at once.
2. ``PUT`` each missing part (streamed from disk, :data:`READ_CHUNK` at a time) and record it in the
   spool item after the server acknowledged it. A restarted process, or the next attempt after a
   network failure or a hub restart, re-sends only the parts the server does not have: at most the
   one part that was in flight is sent twice.
3. ``POST .../complete``; the server checks size and sha256 and makes the checkpoint visible.

The file changed (Ultralytics rewrites ``last.pt`` in place every epoch): a different size or mtime
before a part, or ``checksum_mismatch`` at complete, abandons the session (``DELETE``, best effort)
and returns a ``checksum_mismatch`` result: the worker hashes the file again and starts a new session
(at most ``MAX_CHECKSUM_RETRIES`` times). A session the server no longer knows (expired after
:data:`~trainhub.protocol.UPLOAD_TTL_SECONDS`, or aborted) is started over within the attempt.

Memory is flat: one :data:`READ_CHUNK` buffer in flight, whatever the file size. Long uploads show a
tqdm bar on stderr (files of ``PROGRESS_MIN_BYTES`` or more), starting at the bytes already on the hub.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from trainhub.client.spool import Item, Spool
from trainhub.client.transport import PROGRESS_MIN_BYTES, Result, Transport
from trainhub.protocol import DEFAULT_PART_SIZE, MAX_UPLOAD_PARTS, ErrorCode, UploadCreate, upload_path

__all__ = ["CHUNKED_MIN_BYTES", "READ_CHUNK", "ChunkedUploader", "choose_part_size"]

#: Checkpoints of at least this many bytes go through an upload session (smaller: one ``PUT``).
CHUNKED_MIN_BYTES = DEFAULT_PART_SIZE
#: Bytes read from disk and handed to the socket at a time.
READ_CHUNK = 1024 * 1024
_MIB = 1024 * 1024
#: Sessions started over within one attempt (the server forgot one, e.g. it expired).
_MAX_RESTARTS = 2

HashFn = Callable[[str], tuple[str, int]]


#: Largest part the client picks by itself for a big file (more only past ``MAX_UPLOAD_PARTS``).
_BIG_PART = 64 * _MIB
#: Parts a file is cut into at least, between 8 MiB and ``_BIG_PART`` parts.
_PARTS_TARGET = 32


def choose_part_size(size: int) -> int:
    """About a 32nd of the file in whole MiB, between 8 MiB and 64 MiB, and bigger only when the
    file would need more than ``MAX_UPLOAD_PARTS`` parts.

    Each part is one request with its own bookkeeping on both sides: a 1 GiB file in 32 MiB parts
    took 15-25% less time than in 8 MiB parts on the 2-CPU dev VM, while a part lost to a network
    error still costs at most 64 MiB to send again."""
    share = min(_BIG_PART, max(DEFAULT_PART_SIZE, math.ceil(size / _PARTS_TARGET / _MIB) * _MIB))
    return max(share, math.ceil(size / MAX_UPLOAD_PARTS / _MIB) * _MIB)


def _ranges(parts: list[int]) -> list[list[int]]:
    """``[1, 2, 3, 7]`` -> ``[[1, 3], [7, 7]]``: the spool item stays small for 10,000 parts."""
    out: list[list[int]] = []
    for n in sorted(parts):
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def _unrange(ranges: list[list[int]]) -> list[int]:
    return [n for lo, hi in ranges for n in range(lo, hi + 1)]


def _code(result: Result) -> str | None:
    err = result.body.get("error") if isinstance(result.body, dict) else None
    return str(err.get("code")) if isinstance(err, dict) else None


def _changed(path: str) -> Result:
    # Synthetic, like the server's answer to a rewritten file: the worker re-hashes and starts over.
    message = f"{path} changed during the upload"
    return Result(
        400, {"error": {"code": ErrorCode.CHECKSUM_MISMATCH.value, "message": message}}, message=message
    )


class _Restart(Exception):
    """The session is gone on the server: start a new one."""


class ChunkedUploader:
    """Uploads checkpoint items through upload sessions (see the module docstring).

    Args:
        transport: one-attempt HTTP sender.
        spool: where the session (upload id, acknowledged parts) is kept, in the item's payload.
        model_id: the model the checkpoints belong to.
        progress: show a bar (default: for files of ``PROGRESS_MIN_BYTES`` or more).
        part_size: force a part size (tests); default :func:`choose_part_size`.

    Attributes:
        bytes_sent: part bytes handed to the socket, re-sent ones included (what a resume costs).
        parts_sent: parts acknowledged by the hub.
        on_bytes: called with each chunk's size as it is sent (tests interrupt uploads with it).
    """

    def __init__(
        self,
        transport: Transport,
        spool: Spool,
        model_id: str,
        *,
        progress: bool | None = None,
        part_size: int | None = None,
    ) -> None:
        self.transport = transport
        self.spool = spool
        self.model_id = model_id
        self.progress = progress
        self.part_size = part_size
        self.bytes_sent = 0
        self.parts_sent = 0
        self.on_bytes: Callable[[int], None] | None = None

    def stats(self) -> dict[str, int]:
        """``{"bytes_sent", "parts_sent"}``."""
        return {"bytes_sent": self.bytes_sent, "parts_sent": self.parts_sent}

    # -- one attempt -------------------------------------------------------------------------------

    def upload(self, item: Item, hash_file: HashFn) -> Result:
        """One attempt at delivering a checkpoint item; the final reply (an ``UploadOut``) or the first
        failure. ``hash_file(path) -> (sha256, size)`` (the worker's, cached by size and mtime)."""
        path = str(item.payload["path"])
        result = Result(None, error="connection", message="no attempt")
        for _ in range(_MAX_RESTARTS + 1):
            try:
                return self._attempt(item, path, hash_file)
            except _Restart as exc:
                self._save(item, None)
                result = Result(409, None, message=str(exc))
        return result

    def _attempt(self, item: Item, path: str, hash_file: HashFn) -> Result:
        try:
            st = os.stat(path)
        except OSError as exc:  # will not get better: the worker makes the item dead
            return Result(400, {"error": {"code": "file_unreadable", "message": f"{path}: {exc}"}})
        state: dict[str, Any] | None = item.payload.get("upload")
        if state is not None and (state["size"], state["mtime_ns"]) != (st.st_size, st.st_mtime_ns):
            self._abandon(item, state)
            state = None
        if state is None:
            sha256, size = hash_file(path)
            after = os.stat(path)
            if size != st.st_size or (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                return _changed(path)
            result = self._create(item, sha256, size)
            if not result.ok or not isinstance(result.body, dict) or result.body.get("state") == "complete":
                return result
            state = {
                "upload_id": result.body["upload_id"],
                "sha256": sha256,
                "size": size,
                "mtime_ns": st.st_mtime_ns,
                "part_size": int(result.body["part_size"]),
                "parts": _ranges(list(result.body["parts"])),
            }
            self._save(item, state)
        else:
            result = self.transport.request("GET", upload_path(self.model_id, state["upload_id"]))
            if result.status in (404, 409) and _code(result) == ErrorCode.UPLOAD_NOT_FOUND:
                raise _Restart(result.message)
            if not result.ok or not isinstance(result.body, dict) or result.body.get("state") == "complete":
                return result
            if result.body.get("state") != "open":
                raise _Restart(f"upload {state['upload_id']} is {result.body.get('state')}")
            state["parts"] = _ranges(list(result.body["parts"]))  # the server's list wins
            self._save(item, state)
        result = self._send_parts(item, path, state)
        if not result.ok:
            return result
        result = self.transport.request("POST", f"{upload_path(self.model_id, state['upload_id'])}/complete")
        code = _code(result)
        if code in (ErrorCode.UPLOAD_NOT_FOUND, ErrorCode.UPLOAD_NOT_OPEN, ErrorCode.PARTS_MISSING):
            raise _Restart(result.message)
        if code in (ErrorCode.CHECKSUM_MISMATCH, ErrorCode.SIZE_MISMATCH):
            self._save(item, None)  # the session failed on the server; the file changed under us
        return result

    def _create(self, item: Item, sha256: str, size: int) -> Result:
        p = item.payload
        body: UploadCreate = {
            "kind": str(p["kind"]),
            "size": size,
            "sha256": sha256,
            "part_size": self.part_size or choose_part_size(size),
            "epoch": p.get("epoch"),
            "is_best": bool(p.get("is_best", False)),
            "map": p.get("map"),
        }
        return self.transport.request("POST", upload_path(self.model_id), json=body)

    def _send_parts(self, item: Item, path: str, state: dict[str, Any]) -> Result:
        size, part_size = int(state["size"]), int(state["part_size"])
        count = max(1, math.ceil(size / part_size))
        have = set(_unrange(state["parts"]))
        todo = [n for n in range(1, count + 1) if n not in have]
        show = size >= PROGRESS_MIN_BYTES if self.progress is None else self.progress
        bar = None
        if show and todo:
            from tqdm import tqdm

            done = size - sum(min(part_size, size - (n - 1) * part_size) for n in todo)
            bar = tqdm(
                total=size,
                initial=done,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                desc=f"trainhub: upload {os.path.basename(path)}",
                leave=False,
            )
        try:
            for n in todo:
                st = os.stat(path)
                if (st.st_size, st.st_mtime_ns) != (state["size"], state["mtime_ns"]):
                    self._abandon(item, state)
                    return _changed(path)
                offset = (n - 1) * part_size
                length = min(part_size, size - offset)
                result = self.transport.request(
                    "PUT",
                    f"{upload_path(self.model_id, state['upload_id'])}/parts/{n}",
                    content=self._read(path, offset, length, bar),
                    headers={"content-length": str(length), "content-type": "application/octet-stream"},
                )
                code = _code(result)
                if code in (ErrorCode.UPLOAD_NOT_FOUND, ErrorCode.UPLOAD_NOT_OPEN):
                    raise _Restart(result.message)
                if code == ErrorCode.SIZE_MISMATCH:  # the file shrank: a new session, with a new hash
                    self._abandon(item, state)
                    return _changed(path)
                if not result.ok:
                    return result
                self.parts_sent += 1
                have.add(n)
                state["parts"] = _ranges(list(have))
                self._save(item, state)
            return Result(200)
        finally:
            if bar is not None:
                bar.close()

    def _read(self, path: str, offset: int, length: int, bar: Any) -> Iterator[bytes]:
        remaining = length
        with open(path, "rb") as f:
            f.seek(offset)
            while remaining > 0:
                chunk = f.read(min(READ_CHUNK, remaining))
                if not chunk:  # shrank: the transport turns this into a failed attempt
                    raise OSError(f"{path} shrank during the upload")
                remaining -= len(chunk)
                self.bytes_sent += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
                if self.on_bytes is not None:
                    self.on_bytes(len(chunk))
                yield chunk

    # -- the session in the spool item -------------------------------------------------------------

    def _save(self, item: Item, state: dict[str, Any] | None) -> None:
        if state is None:
            if item.payload.pop("upload", None) is None:
                return
        else:
            item.payload["upload"] = state
        self.spool.update_payload(item.id, item.payload)

    def _abandon(self, item: Item, state: dict[str, Any]) -> None:
        """Drop a session whose file changed: forget it, and free its parts on the hub (best effort;
        an abort that fails is cleaned up by the hub's expiry)."""
        self._save(item, None)
        self.transport.request("DELETE", upload_path(self.model_id, state["upload_id"]))
