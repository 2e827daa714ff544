"""trainhub: stream training metrics, checkpoints and heartbeats to a self-hosted hub.

``import trainhub`` is cheap: it loads the client session and the wire protocol, never the server,
httpx, torch or ultralytics.
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

__version__ = "0.1.0"

__all__ = [
    "ClientSettings",
    "HubError",
    "HubSession",
    "NullSession",
    "TrainhubError",
    "__version__",
    "start_session",
]
