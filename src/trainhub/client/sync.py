"""Send what earlier runs left in the spool (for a ``trainhub sync`` command).

A spool file remembers its model id and hub URL (``meta`` table), so it can be delivered by any later
process: :func:`sync_spool` drains one file, :func:`sync_dir` every file in the spool directory.
"""

from __future__ import annotations

import time
from pathlib import Path

from trainhub.client.settings import ClientSettings
from trainhub.client.spool import Spool
from trainhub.client.transport import Transport
from trainhub.client.worker import Worker

__all__ = ["sync_dir", "sync_spool"]


def sync_spool(path: str | Path, settings: ClientSettings | None = None, *, timeout: float = 600.0) -> int:
    """Deliver one spool file on the calling thread; return how many items are left.

    The hub URL is the one the spool was written for, unless ``settings.url`` was set explicitly
    (``TRAINHUB_URL``); the API key comes from ``settings``. Do not run it on the spool of a run that
    is still going: opening a spool makes its leased items ready again.
    """
    s = settings or ClientSettings.from_env()
    spool = Spool(path, max_bytes=s.spool_max_bytes)
    try:
        model_id = spool.get_meta("model_id") or Path(path).stem
        url = spool.get_meta("url") or s.url
        transport = Transport(url, s.api_key, timeout=s.request_timeout)
        worker = Worker(spool, transport, model_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and worker.drain_once():
            pass
        transport.close()
        return spool.pending()
    finally:
        spool.close()


def sync_dir(settings: ClientSettings | None = None, *, timeout: float = 600.0) -> dict[str, int]:
    """:func:`sync_spool` every ``*.db`` in ``settings.spool_dir``; ``{path: items left}``."""
    s = settings or ClientSettings.from_env()
    return {str(p): sync_spool(p, s, timeout=timeout) for p in sorted(Path(s.spool_dir).glob("*.db"))}
