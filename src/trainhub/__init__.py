"""trainhub: stream training metrics, checkpoints and heartbeats to a self-hosted hub.

``import trainhub`` is cheap: it loads the client session and the wire protocol, never the server,
httpx, torch or ultralytics.

* :class:`HubSession` / :func:`start_session`: the session the framework integrations report through.
* :func:`start` -> :class:`Run`: the plain-loop API (``run.log``, ``run.save_checkpoint``, ``run.finish``).
* :func:`pull`: download a model's checkpoint from the hub (to resume from it).
"""

from __future__ import annotations

from trainhub.client import (
    ClientSettings,
    HubError,
    HubSession,
    NullSession,
    TrainhubError,
    start_session,
)
from trainhub.client.pull import pull
from trainhub.client.run import Run, start

__version__ = "0.1.0"

__all__ = [
    "ClientSettings",
    "HubError",
    "HubSession",
    "NullSession",
    "Run",
    "TrainhubError",
    "__version__",
    "pull",
    "start",
    "start_session",
]
