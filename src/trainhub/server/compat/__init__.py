"""Ultralytics compatibility: the HUB (``/v1``) and Platform (``/api``) wire protocols.

The unmodified ``ultralytics`` package can be pointed at trainhub by environment variable
(docs/moving-from-ultralytics-hub.md): 8.1 - 8.4.114 speak the HUB protocol through hub-sdk,
8.4.115 and later the Platform protocol. Both map onto trainhub's own models, metrics,
checkpoints and heartbeats (:mod:`.service`), so a run looks the same whatever client sent it.

Modules: :mod:`.hub` and :mod:`.platform` (routes), :mod:`.files` (signed download/upload URLs,
:mod:`.signing`), :mod:`.service` (rules), :mod:`.store` (SQL), :mod:`.convert` (pure shape
conversions), :mod:`.multipart` (streaming multipart reader), :mod:`.http` (error shapes, keys).
"""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["routers"]


def routers() -> list[APIRouter]:
    """The routers to include at the app root (their paths are absolute)."""
    from trainhub.server.compat import files, hub, platform

    return [hub.router, platform.router, files.router]
