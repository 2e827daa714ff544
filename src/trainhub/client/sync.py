"""Send what earlier runs left in their spools: the engine of ``trainhub sync``.

A spool file remembers its model id and hub URL (``meta`` table), so any later process can deliver
it: after ``kill -9``, an OOM kill, a preemption, a hub outage longer than the run, or an offline run
(``TRAINHUB_MODE=offline``). :func:`sync_spool` drains one file, :func:`sync_dir` every ``*.db`` in
the spool directory, and :func:`spool_status` describes them without sending anything.

Safety: a spool whose owner process is still alive (it holds the spool's :class:`OwnerLock`) is
skipped, never opened: opening a spool hands its leased items to the new opener. Every item is
idempotent on the hub (epochs by number, the model by id, events by id, checkpoints by slot), so an
item that had reached the hub before the crash is "already present", as the hub's reply says, and
is not stored twice.

A spool left with nothing in it (every item delivered, none dead) is deleted.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainhub.client.errors import SpoolError
from trainhub.client.retry import RetryPolicy
from trainhub.client.settings import ClientSettings
from trainhub.client.spool import OwnerLock, Spool
from trainhub.client.transport import Transport
from trainhub.client.worker import Worker

__all__ = ["DeadItem", "SpoolStatus", "SyncReport", "spool_files", "spool_status", "sync_dir", "sync_spool"]

#: Default longest time one ``sync`` keeps trying, seconds.
DEFAULT_TIMEOUT = 600.0


@dataclass
class SyncReport:
    """The outcome of syncing one spool file.

    Attributes:
        path: the spool file.
        model_id: the model it belongs to.
        url: the hub it was sent to.
        sent: items the hub stored now.
        present: items the hub already had (a re-send; it says so in its reply).
        failed: items the hub rejected now (kept as dead, see ``sync --status``).
        left: items still not delivered (hub unreachable within the timeout, or key rejected).
        skipped: why the file was not synced (a live process owns it), else None.
        error: a problem that stopped the sync of this file, else None.
        removed: the file was deleted (nothing left in it).
    """

    path: str
    model_id: str = ""
    url: str = ""
    sent: int = 0
    present: int = 0
    failed: int = 0
    left: int = 0
    skipped: str | None = None
    error: str | None = None
    removed: bool = False


@dataclass
class DeadItem:
    """An item the hub rejected: its category, idempotency key, attempts and the hub's message."""

    id: int
    category: str
    key: str | None
    attempts: int
    error: str | None


@dataclass
class SpoolStatus:
    """What one spool file holds (``trainhub sync --status``)."""

    path: str
    model_id: str
    url: str
    in_use: bool
    pending: dict[str, int] = field(default_factory=dict)  # category -> items to send
    dead: list[DeadItem] = field(default_factory=list)
    bytes: int = 0
    error: str | None = None

    @property
    def pending_total(self) -> int:
        """Items still to send."""
        return sum(self.pending.values())


def spool_files(spool_dir: str | Path) -> list[Path]:
    """Every spool file (``*.db``) of a directory, sorted."""
    return sorted(Path(spool_dir).glob("*.db"))


def _remove(path: Path) -> bool:
    removed = False
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()
            removed = removed or suffix == ""
    return removed


def sync_spool(
    path: str | Path,
    settings: ClientSettings | None = None,
    *,
    url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retry_dead: bool = False,
    progress: Callable[[int], None] | None = None,
    http_transport: Any = None,
) -> SyncReport:
    """Deliver one spool file on the calling thread.

    Args:
        path: the spool file.
        settings: API key, timeouts and retry settings (default: from the environment).
        url: hub root to send to (default: the one the spool was written for).
        timeout: longest time to keep trying, seconds; what is left stays in the file.
        retry_dead: send the items the hub rejected earlier again (after fixing the cause).
        progress: called with the number of items delivered (or rejected) since the last call.
        http_transport: an ``httpx.BaseTransport`` (tests).

    Returns:
        A :class:`SyncReport`. Never raises for a hub or spool problem (see ``error``).
    """
    s = settings or ClientSettings.from_env()
    path = Path(path)
    report = SyncReport(str(path))
    lock = OwnerLock.acquire(path)
    if lock is None:
        report.skipped = "in use by a running process"
        return report
    try:
        try:
            spool = Spool(path, max_bytes=s.spool_max_bytes)
        except SpoolError as exc:
            report.error = str(exc)
            return report
        try:
            _drain(spool, s, report, url, timeout, retry_dead, progress, http_transport)
        except SpoolError as exc:
            report.error = str(exc)
        finally:
            spool.close()
        if report.error is None and not report.left and _is_empty(path, s):
            report.removed = _remove(path)
        return report
    finally:
        lock.release()


def _is_empty(path: Path, s: ClientSettings) -> bool:
    spool = Spool(path, max_bytes=s.spool_max_bytes, recover=False)
    try:
        return not spool.counts()
    finally:
        spool.close()


def _drain(
    spool: Spool,
    s: ClientSettings,
    report: SyncReport,
    url: str | None,
    timeout: float,
    retry_dead: bool,
    progress: Callable[[int], None] | None,
    http_transport: Any,
) -> None:
    report.model_id = spool.get_meta("model_id") or Path(spool.path).stem
    report.url = (url or spool.get_meta("url") or s.url).rstrip("/")
    if retry_dead:
        spool.retry_dead()
    if spool.pending() == 0:
        return
    deadline = time.monotonic() + timeout

    def wait(seconds: float) -> bool:
        # Give up (the items stay in the file) rather than sleep past the deadline.
        if time.monotonic() + seconds > deadline:
            return True
        time.sleep(seconds)
        return False

    transport = Transport(report.url, s.api_key, timeout=s.request_timeout, transport=http_transport)
    policy = RetryPolicy(deadline=min(s.retry_deadline, timeout), cap=s.retry_max_delay)
    worker = Worker(spool, transport, report.model_id, policy=policy, wait=wait)
    done = 0
    try:
        while time.monotonic() < deadline and not worker.auth_failed:
            more = worker.drain_once()
            now_done = sum(worker.counters["sent"].values()) + sum(worker.counters["dead"].values())
            if progress is not None and now_done > done:
                progress(now_done - done)
            done = now_done
            if not more:
                break
    finally:
        transport.close()
    present = sum(worker.counters["present"].values())
    report.present = present
    report.sent = sum(worker.counters["sent"].values()) - present
    report.failed = sum(worker.counters["dead"].values())
    report.left = spool.pending()
    if worker.auth_failed:
        report.error = "the hub rejected the API key (set TRAINHUB_API_KEY or --api-key)"


def sync_dir(
    settings: ClientSettings | None = None,
    *,
    url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retry_dead: bool = False,
    progress: bool = False,
    http_transport: Any = None,
) -> list[SyncReport]:
    """:func:`sync_spool` every spool file in ``settings.spool_dir``, oldest model first.

    ``progress`` shows one bar (items) for the whole directory on stderr. ``timeout`` bounds the
    whole run.
    """
    s = settings or ClientSettings.from_env()
    files = spool_files(s.spool_dir)
    bar = None
    update: Callable[[int], None] | None = None
    if progress and files:
        from tqdm import tqdm

        total = sum(st.pending_total for st in spool_status(s.spool_dir) if not st.in_use)
        bar = tqdm(total=total, desc="trainhub: sync", unit="item")

        def update(n: int) -> None:
            assert bar is not None
            bar.update(n)

    deadline = time.monotonic() + timeout
    reports: list[SyncReport] = []
    try:
        for path in files:
            remaining = max(0.0, deadline - time.monotonic())
            reports.append(
                sync_spool(
                    path,
                    s,
                    url=url,
                    timeout=remaining,
                    retry_dead=retry_dead,
                    progress=update,
                    http_transport=http_transport,
                )
            )
    finally:
        if bar is not None:
            bar.close()
    return reports


def spool_status(spool_dir: str | Path) -> list[SpoolStatus]:
    """What every spool file in ``spool_dir`` holds, without sending or changing anything."""
    out: list[SpoolStatus] = []
    for path in spool_files(spool_dir):
        lock = OwnerLock.acquire(path)
        in_use = lock is None
        if lock is not None:
            lock.release()
        status = SpoolStatus(str(path), path.stem, "", in_use)
        try:
            spool = Spool(path, recover=False)
        except SpoolError as exc:
            status.error = str(exc)
            out.append(status)
            continue
        try:
            status.model_id = spool.get_meta("model_id") or path.stem
            status.url = spool.get_meta("url") or ""
            for state, categories in spool.counts().items():
                if state == "dead":
                    continue
                for category, n in categories.items():
                    status.pending[category] = status.pending.get(category, 0) + n
            status.dead = [
                DeadItem(i.id, i.category, i.key, i.attempts, i.last_error) for i in spool.items("dead")
            ]
            status.bytes = int(spool.stats()["bytes"])
        except SpoolError as exc:
            status.error = str(exc)
        finally:
            spool.close()
        out.append(status)
    return out
