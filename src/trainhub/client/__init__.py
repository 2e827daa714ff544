"""The trainhub client: a session that spools a training run and a worker that sends it to the hub.

Layers, one module each, data flowing down::

    session.py     HubSession / start_session: the training-thread API (spool and return)
    spool.py       durable SQLite queue, one file per model
    syncer.py      the spool's fsync thread (the training thread never waits for the disk)
    worker.py      background thread: lease, batch, send, retry, ack
    transport.py   one HTTP attempt (httpx, imported lazily)
    retry.py       pure backoff policy;  ratelimit.py  per-category timers
    heartbeat.py   heartbeat thread;     events.py     anonymous usage events
    settings.py    ClientSettings (TRAINHUB_* env);  errors.py  exception tree
"""

from __future__ import annotations

from trainhub.client.errors import (
    AuthError,
    ConfigError,
    HubError,
    PermanentError,
    SpoolError,
    TrainhubError,
    TransientError,
    UnreachableError,
)
from trainhub.client.nullsession import NullSession
from trainhub.client.session import HubSession, start_session
from trainhub.client.settings import ClientSettings

__all__ = [
    "AuthError",
    "ClientSettings",
    "ConfigError",
    "HubError",
    "HubSession",
    "NullSession",
    "PermanentError",
    "SpoolError",
    "TrainhubError",
    "TransientError",
    "UnreachableError",
    "start_session",
]
