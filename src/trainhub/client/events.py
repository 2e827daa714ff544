"""Anonymous usage events, sent to the user's own hub (never to a third party).

Every field sent (``protocol.EventIn``), and nothing else:

* ``kind``: ``"train"``, ``"val"``, ``"predict"`` or ``"export"``.
* ``id``: 32 random hex characters, new for every event, so the hub stores a re-sent event once.
* ``install_id``: a random 32-hex id made once per machine account and stored in
  ``$XDG_CONFIG_HOME/trainhub/install_id`` (default ``~/.config/trainhub/install_id``), or next to the
  spool when that is not writable. It is not derived from anything about the machine.
* ``task``: the task name given by the caller (``"detect"``, ``"segment"``...), or ``None``.
* ``mode``: the mode given by the caller (``"train"``, ``"val"``...), or ``None``.
* ``versions``: ``{"python": ..., "trainhub": ..., "ultralytics": ...}``; ``ultralytics`` only when
  installed, read from its package metadata (it is never imported).
* ``ts``: Unix time of the event, seconds.

Never sent: paths, host or user names, IP addresses chosen by us, datasets, metric values.

Opt-out: ``TRAINHUB_EVENTS=0`` or ``DO_NOT_TRACK=1``. Events are also off by default when ``CI`` is
set or when running under pytest; ``TRAINHUB_EVENTS=1`` turns them on there. At most one event per
kind per :data:`EVENT_INTERVAL` seconds per session; they go through the spool like everything else
and are the first thing dropped when the spool is full.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from trainhub.client.ratelimit import RateLimiter
from trainhub.protocol import EventIn

__all__ = ["EVENT_INTERVAL", "EVENT_KINDS", "EventRecorder", "events_enabled", "install_id", "versions"]

log = logging.getLogger("trainhub")

#: Accepted event kinds.
EVENT_KINDS = frozenset({"train", "val", "predict", "export"})
#: At most one event of each kind per this many seconds.
EVENT_INTERVAL = 60.0

_WORD_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def events_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether usage events are on, from the environment (see the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("DO_NOT_TRACK", "").strip().lower() in _TRUE:
        return False
    explicit = env.get("TRAINHUB_EVENTS", "").strip().lower()
    if explicit in _FALSE:
        return False
    if explicit in _TRUE:
        return True
    under_test = bool(env.get("CI") or env.get("PYTEST_CURRENT_TEST")) or "pytest" in sys.modules
    return not under_test


def _config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "trainhub"


def install_id(fallback_dir: Path | None = None) -> str:
    """The random install id, created on first use (see the module docstring for where)."""
    candidates = [_config_dir() / "install_id"]
    if fallback_dir is not None:
        candidates.append(fallback_dir / "install_id")
    for path in candidates:
        try:
            existing = path.read_text().strip()
            if existing:
                return existing
        except OSError:
            pass
    import uuid

    new = uuid.uuid4().hex
    for path in candidates:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new + "\n")
            return new
        except OSError:
            continue
    return new  # nowhere writable: an id for this process only


def versions() -> dict[str, str]:
    """Versions of Python, trainhub and (if installed) ultralytics, without importing ultralytics."""
    return dict(_versions())


@cache
def _versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("trainhub", "ultralytics"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _word(value: str | None) -> str | None:
    # Only short identifiers go out: a caller passing a path or free text by mistake sends nothing.
    if value is not None and _WORD_RE.fullmatch(value):
        return value
    return None


class EventRecorder:
    """Builds rate-limited usage events; the session puts them into the spool.

    Args:
        enabled: the resolved opt-in (``ClientSettings.events``); when False, :meth:`make` returns None.
        id_dir: fallback directory for the install id (the spool directory).
        clock: monotonic clock for the per-kind rate limit.
        interval: seconds between two events of the same kind.
    """

    def __init__(
        self,
        enabled: bool,
        *,
        id_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = EVENT_INTERVAL,
    ) -> None:
        self.enabled = enabled
        self._id_dir = id_dir
        self._install_id: str | None = None  # made lazily: no file is written while events are off
        self._limiter = RateLimiter({}, clock, default=interval)
        self.dropped: dict[str, int] = {}

    def make(self, kind: str, task: str | None = None, mode: str | None = None) -> EventIn | None:
        """The event to send, or None when events are off, the kind is unknown or rate limited."""
        if not self.enabled:
            return None
        if kind not in EVENT_KINDS:
            self._drop("unknown_kind")
            return None
        if not self._limiter.acquire(kind):
            self._drop("rate_limited")
            return None
        if self._install_id is None:
            self._install_id = install_id(self._id_dir)
        return {
            "kind": kind,
            "id": os.urandom(16).hex(),
            "install_id": self._install_id,
            "task": _word(task),
            "mode": _word(mode),
            "versions": versions(),
            "ts": time.time(),
        }

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
