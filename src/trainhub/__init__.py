"""trainhub: stream training metrics, checkpoints and heartbeats to a self-hosted hub."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
