"""``NullSession``: the session of ``TRAINHUB_MODE=disabled``, same API as ``HubSession``, does nothing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["NullSession"]


class NullSession:
    """A session that sends and stores nothing, so callers need no ``if session`` branches."""

    model_id: str | None = None
    model_url: str | None = None
    stop_requested = False
    alive = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.rate_limits: dict[str, float] = {"metrics": 3.0, "ckpt": 900.0, "heartbeat": 30.0}
        self.timers: dict[str, float] = {}
        self.metrics_queue: dict[int, str] = {}
        self.metrics_upload_failed_queue: dict[int, str] = {}

    @property
    def stats(self) -> dict[str, Any]:
        """Always ``{"mode": "disabled"}``."""
        return {"mode": "disabled"}

    def queue_metrics(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Do nothing."""

    def upload_metrics(self) -> None:
        """Do nothing (the queue is cleared so it does not grow)."""
        self.metrics_queue.clear()

    def upload_model(
        self, epoch: int, weights: str | Path, is_best: bool = False, map: float = 0.0, final: bool = False
    ) -> None:
        """Do nothing."""

    def set_final_metrics(self, metrics: Mapping[str, float], *, status: str = "done") -> None:
        """Do nothing."""

    def set_status(self, status: str) -> None:
        """Do nothing."""

    def send_event(self, kind: str, task: str | None = None, mode: str | None = None) -> None:
        """Do nothing."""

    def flush(self, timeout: float | None = None, progress: bool = False) -> bool:
        """Nothing to flush: True."""
        return True

    def close(self, timeout: float | None = None) -> None:
        """Do nothing."""

    def __enter__(self) -> NullSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "NullSession()"
