"""The background thread that delivers spooled items to the hub.

It leases ready items oldest first, turns runs of them into requests and sends each through the
transport, strictly in order (head-of-line: an item is retried until it succeeds or is dead before the
next one goes, so the ``model`` item always reaches the hub before that model's metrics):

=============  ===============================================================================
category       request
=============  ===============================================================================
model          ``PUT /api/v1/models/{id}`` (:class:`~trainhub.protocol.ModelCreate`)
metrics        ``POST /api/v1/models/{id}/metrics``, consecutive epochs batched (up to 1,000 / 1 MiB)
checkpoint     ``PUT /api/v1/models/{id}/checkpoints/{kind}?epoch=&is_best=&map=``, file streamed from disk;
               files of 8 MiB or more: a resumable upload session (:mod:`trainhub.client.checkpoints`)
status         ``POST /api/v1/models/{id}/status``
event          ``POST /api/v1/events``, consecutive events batched (up to 1,000)
=============  ===============================================================================

2xx acks (deletes) the items; what the hub says it already had (``PUT`` of the model answered 200
instead of 201, a metrics reply's ``replaced``, an events reply's ``duplicates``, any reply's
``already_present``) is counted as ``present`` (a re-send after a crash or a lost reply).
Transient failures (connection errors, timeouts, 408, 429, 5xx) are retried with
:class:`~trainhub.client.retry.RetryPolicy`, honouring ``Retry-After`` as a floor; the wait is on an
Event so :meth:`Worker.close` interrupts it. Past the policy's deadline the worker warns once and
keeps trying every ``cap`` seconds: items are never dropped for being late. Other 4xx are permanent:
a batch is split to find the bad item, which goes to the spool's dead state with the server's
message (logged once per error code). 401/403 stop the worker: every request would fail the
same way; the items stay ready in the spool for a later run with a valid key.

Lifecycle: the thread starts lazily (:meth:`Worker.ensure_started`), is a daemon, and is started
afresh in a forked child (DataLoader workers fork) on its first use there.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainhub.client.checkpoints import CHUNKED_MIN_BYTES, ChunkedUploader
from trainhub.client.errors import AuthError, PermanentError, SpoolError
from trainhub.client.retry import RetryPolicy, parse_retry_after
from trainhub.client.spool import Item, Spool
from trainhub.client.transport import Result, Transport, file_sha256
from trainhub.protocol import (
    API_PREFIX,
    HEADER_IDEMPOTENCY_KEY,
    MAX_EPOCHS_PER_REQUEST,
    MAX_EVENTS_PER_REQUEST,
    ErrorCode,
    checkpoint_path,
    model_path,
)

__all__ = ["Worker"]

log = logging.getLogger("trainhub")

#: Largest JSON body the worker builds from a batch (the protocol allows 8 MiB).
MAX_BATCH_BYTES = 1024 * 1024
#: A checkpoint rewritten while it was read is re-read this many times before it is dead.
MAX_CHECKSUM_RETRIES = 3

_WORKERS: weakref.WeakSet[Worker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for worker in list(_WORKERS):
        worker._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def already_present(category: str, n: int, result: Result) -> int:
    """How many of the ``n`` items of a delivered request the hub says it already had."""
    body = result.body if isinstance(result.body, dict) else {}
    if category == "model":
        return 1 if result.status == 200 else 0  # 201: created now
    field = {"metrics": "replaced", "event": "duplicates"}.get(category, "already_present")
    value = body.get(field)
    if isinstance(value, bool):
        return n if value else 0
    return min(n, value) if isinstance(value, int) and value > 0 else 0


@dataclass
class _Request:
    items: list[Item]
    method: str
    path: str
    json: Any = None
    params: dict[str, str | int | float | bool] = field(default_factory=dict)
    file: str | None = None
    size: int = 0  # JSON bytes of a metrics batch so far

    @property
    def ids(self) -> list[int]:
        return [item.id for item in self.items]

    @property
    def category(self) -> str:
        return self.items[0].category


class Worker:
    """Delivers one model's spool (see the module docstring).

    Args:
        spool: the model's spool.
        transport: one-attempt HTTP sender.
        model_id: the model the spool belongs to.
        policy: retry policy for transient failures.
        wait: ``wait(seconds) -> stop_requested``; default waits on the stop Event. Tests inject one that
            records the delays and returns at once.
        clock: monotonic clock for retry deadlines and :meth:`flush` timeouts.
        wall: Unix clock for ``Retry-After`` HTTP dates.
        batch_size: items leased at a time.
    """

    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        model_id: str,
        *,
        policy: RetryPolicy | None = None,
        wait: Callable[[float], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        batch_size: int = 100,
    ) -> None:
        self.spool = spool
        self.transport = transport
        self.model_id = model_id
        self.policy = policy or RetryPolicy()
        self._wait_fn = wait
        self._clock = clock
        self._wall = wall
        self.batch_size = batch_size
        #: Set once the model item has been delivered (or there was none): heartbeats wait for it.
        self.model_ready = threading.Event()
        self.auth_failed = False
        self.counters: dict[str, dict[str, int]] = {"sent": {}, "present": {}, "dead": {}, "retries": {}}
        self._logged: set[str] = set()
        self._outage = False
        self._closed = False
        self._hashes: dict[tuple[str, int, int], str] = {}
        #: Checkpoints of CHUNKED_MIN_BYTES or more go through resumable upload sessions.
        self.uploads = ChunkedUploader(transport, spool, model_id)
        self._reset_after_fork()
        _WORKERS.add(self)

    def _reset_after_fork(self) -> None:
        # Threads do not survive fork() and locks may be held by them: make new ones; start lazily.
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._progress = threading.Condition()

    # -- control (any thread) ----------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start the thread if it is not running (first use, after fork, or after a crash of it)."""
        if self._pid != os.getpid():
            self._reset_after_fork()
        with self._start_lock:
            if self._closed or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="trainhub-worker", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the thread is alive (in this process)."""
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()

    def wake(self) -> None:
        """Tell the thread new items are ready (it also polls twice a second)."""
        self._wake.set()

    def flush(self, timeout: float, progress: bool = False) -> bool:
        """Wait until nothing is ready or leased, at most ``timeout`` seconds; whether that happened.

        Returns early (False) when the worker cannot make progress: closed or rejected API key.
        ``progress`` shows a bar of delivered items on stderr.
        """
        self.ensure_started()
        self.wake()
        deadline = self._clock() + timeout
        bar = None
        try:
            while True:
                pending = self.spool.pending()
                if progress and bar is None and pending:
                    from tqdm import tqdm

                    # delay: a flush that is over in a second shows no bar at all
                    bar = tqdm(total=pending, desc="trainhub: sending", unit="item", leave=False, delay=1.0)
                if bar is not None:
                    bar.update(max(0, int(bar.total or 0) - pending - bar.n))
                if pending == 0:
                    return True
                remaining = deadline - self._clock()
                if remaining <= 0 or self.auth_failed or self._closed:
                    return False
                with self._progress:
                    self._progress.wait(min(remaining, 0.05))
        finally:
            if bar is not None:
                bar.close()

    def close(self, timeout: float = 1.0) -> None:
        """Stop the thread, interrupting any retry wait; join at most ``timeout`` seconds.

        A thread stuck in an HTTP request is left behind (it is a daemon); its leased items become ready
        again when the spool is next opened.
        """
        self._closed = True
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        """Counters per category: ``sent`` (acked), ``present`` (of those, what the hub already had),
        ``dead`` and ``retries`` (failed attempts)."""
        return {k: dict(v) for k, v in self.counters.items()} | {"auth_failed": self.auth_failed}

    # -- the thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and not self.auth_failed:
                if not self.drain_once():
                    self._wake.wait(0.5)
        except SpoolError:
            if not self._closed:  # after close() the session closes the spool under us: not an error
                log.exception("trainhub: the upload worker stopped on a spool error")
        except Exception:  # a bug must not kill training; the next ensure_started() restarts the thread
            log.exception("trainhub: the upload worker stopped on an internal error")
        finally:
            self._notify()

    def drain_once(self) -> bool:
        """Lease one batch and deliver it (on the calling thread); whether there was anything to do."""
        self._wake.clear()  # before lease: a put after this point sets it again, so no wake-up is lost
        try:
            items = self.spool.lease(self.batch_size)
        except SpoolError as exc:
            self._log_once("spool", "trainhub: cannot read the spool: %s", exc)
            return False
        if not items:
            self.model_ready.set()
            self._notify()
            return False
        if items[0].category != "model":
            self.model_ready.set()  # the model item went earlier (or the model already existed)
        requests = self._build(items)
        for i, req in enumerate(requests):
            if not self._deliver(req):
                self.spool.requeue([item_id for r in requests[i:] for item_id in r.ids])
                return False
        return True

    def drain(self) -> bool:
        """Deliver everything ready on the calling thread (tests, ``sync``); whether nothing is left."""
        while not self._stop.is_set() and not self.auth_failed and self.drain_once():
            pass
        return self.spool.pending() == 0

    def _wait(self, seconds: float) -> bool:
        if self._wait_fn is not None:
            return self._wait_fn(seconds) or self._stop.is_set()
        return self._stop.wait(seconds)

    def _notify(self) -> None:
        with self._progress:
            self._progress.notify_all()

    def _deliver(self, req: _Request) -> bool:
        """Send until acked or dead; False when stopping (the caller requeues the items)."""
        start, attempt, checksum_retries = self._clock(), 0, 0
        while not self._stop.is_set():
            result = self._send(req)
            if result.ok:
                self.spool.ack(req.ids)
                self._count("sent", req)
                present = already_present(req.category, len(req.items), result)
                if present:
                    counter = self.counters["present"]
                    counter[req.category] = counter.get(req.category, 0) + present
                self._outage = False
                self._done(req)
                return True
            exc = result.exception()
            assert exc is not None
            if isinstance(exc, AuthError):
                self.auth_failed = True
                self.spool.record_attempt(req.ids, str(exc))
                log.error(
                    "trainhub: the hub rejected the API key (%s); nothing more is sent, the data is "
                    "kept in %s",
                    exc,
                    self.spool.path,
                )
                return False
            rewritten = exc.code in (ErrorCode.CHECKSUM_MISMATCH, ErrorCode.SIZE_MISMATCH)
            retry_rewritten = rewritten and checksum_retries < MAX_CHECKSUM_RETRIES
            if isinstance(exc, PermanentError) and not retry_rewritten:
                if len(req.items) > 1:  # find the bad item(s); the others still go
                    return all(self._deliver(one) for item in req.items for one in self._build([item]))
                self._log_once(
                    f"{req.category}:{exc.code}",
                    "trainhub: the hub rejected a %s request (%s); kept as dead in %s",
                    req.category,
                    exc,
                    self.spool.path,
                )
                self.spool.nack(req.ids, str(exc), permanent=True)
                self._count("dead", req)
                self._done(req)
                return True
            checksum_retries += rewritten  # the file changed while we read it: hash it again
            attempt += 1
            self._count("retries", req)
            self.spool.record_attempt(req.ids, str(exc))
            retry_after = parse_retry_after(result.retry_after, self._wall())
            delay = self.policy.next_delay(attempt, self._clock() - start, retry_after)
            if delay is None:
                if not self._outage:
                    log.warning(
                        "trainhub: cannot deliver to %s for %.0f s (%s); still trying every %.0f s, "
                        "the data is kept in %s",
                        self.transport.url,
                        self._clock() - start,
                        exc,
                        self.policy.cap,
                        self.spool.path,
                    )
                self._outage = True
                delay = min(max(self.policy.cap, retry_after or 0.0), 3600.0)
                start, attempt = self._clock(), 0
            if self._wait(delay):
                return False
        return False

    def _done(self, req: _Request) -> None:
        if req.category == "model":
            self.model_ready.set()
        self._notify()

    def _count(self, what: str, req: _Request) -> None:
        counter = self.counters[what]
        counter[req.category] = counter.get(req.category, 0) + len(req.items)

    def _log_once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(msg, *args)

    # -- requests ----------------------------------------------------------------------------------

    def _build(self, items: list[Item]) -> list[_Request]:
        """Group consecutive metrics (and events) into one request each; other items go one by one."""
        out: list[_Request] = []
        base = model_path(self.model_id)
        for item in items:
            last = out[-1] if out else None
            if item.category == "metrics":
                size = len(json.dumps(item.payload))
                if (
                    last is not None
                    and last.category == "metrics"
                    and len(last.items) < MAX_EPOCHS_PER_REQUEST
                    and last.size + size < MAX_BATCH_BYTES
                ):
                    last.items.append(item)
                    last.json["epochs"].append(item.payload)
                    last.size += size
                else:
                    out.append(
                        _Request([item], "POST", f"{base}/metrics", {"epochs": [item.payload]}, size=size)
                    )
            elif item.category == "event":
                if last is not None and last.category == "event" and len(last.items) < MAX_EVENTS_PER_REQUEST:
                    last.items.append(item)
                    last.json["events"].append(item.payload)
                else:
                    out.append(_Request([item], "POST", f"{API_PREFIX}/events", {"events": [item.payload]}))
            elif item.category == "model":
                out.append(_Request([item], "PUT", base, item.payload))
            elif item.category == "status":
                out.append(_Request([item], "POST", f"{base}/status", item.payload))
            else:  # checkpoint
                p = item.payload
                params = {k: p[k] for k in ("epoch", "is_best", "map") if p.get(k) is not None}
                path = checkpoint_path(self.model_id, p["kind"])
                out.append(_Request([item], "PUT", path, params=params, file=p["path"]))
        return out

    def _send(self, req: _Request) -> Result:
        if req.file is None:
            body = json.dumps(req.json, sort_keys=True).encode()
            # Content-derived: a replay of the same request dedupes, a changed epoch does not.
            import hashlib

            key = hashlib.sha256(f"{req.method} {req.path} ".encode() + body).hexdigest()[:32]
            return self.transport.request(
                req.method, req.path, json=req.json, headers={HEADER_IDEMPOTENCY_KEY: key}
            )
        try:
            if Path(req.file).stat().st_size >= CHUNKED_MIN_BYTES:
                return self.uploads.upload(req.items[0], self._hash)
            sha256, size = self._hash(req.file)
        except OSError as exc:
            # A missing or unreadable file will not get better: a synthetic 400 makes the item dead.
            return Result(400, {"error": {"code": "file_unreadable", "message": f"{req.file}: {exc}"}})
        key = f"{self.model_id}:{req.path.rsplit('/', 1)[-1]}:{sha256}"
        return self.transport.upload(
            req.path,
            req.file,
            sha256=sha256,
            size=size,
            params=req.params,
            headers={HEADER_IDEMPOTENCY_KEY: key},
        )

    def _hash(self, file: str) -> tuple[str, int]:
        """sha256 and size of a checkpoint, cached by (path, size, mtime) so a retry does not re-read it."""
        st = Path(file).stat()
        cache_key = (file, st.st_size, st.st_mtime_ns)
        if cache_key not in self._hashes:
            sha256, size = file_sha256(file)
            if size != st.st_size:
                return sha256, size  # being rewritten: do not cache
            self._hashes = {cache_key: sha256}  # only the latest: bounded memory
        return self._hashes[cache_key], st.st_size
