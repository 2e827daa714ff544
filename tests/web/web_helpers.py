"""Helpers of the web tests: API calls with the admin key, and a training run streamed by HubSession."""

from __future__ import annotations

import hashlib
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from conftest import HubServer
    from trainhub import HubSession

API = "/api/v1"


def api(server: HubServer) -> httpx.Client:
    """An httpx client on the server with the admin key."""
    return httpx.Client(base_url=server.url, headers=server.headers(), timeout=60)


def make_model(c: httpx.Client, name: str, config: dict[str, Any], epochs: list[dict[str, float]]) -> str:
    """A model with a client-made id and the given per-epoch metrics; returns its id."""
    model_id = secrets.token_hex(10)
    r = c.put(
        f"{API}/models/{model_id}", json={"name": name, "project": "ui", "config": config, "epochs": 10}
    )
    assert r.status_code == 201, r.text
    rows = [{"epoch": i, "metrics": m} for i, m in enumerate(epochs)]
    assert c.post(f"{API}/models/{model_id}/metrics", json={"epochs": rows}).status_code == 200
    return model_id


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def yolo_like(epoch: int) -> dict[str, float]:
    """One epoch of Ultralytics-style detection metrics that improve with the epoch."""
    k = 1.0 / (epoch + 1)
    return {
        "train/box_loss": 1.2 * k + 0.3,
        "train/cls_loss": 2.0 * k + 0.4,
        "train/dfl_loss": 1.1 * k + 0.8,
        "val/box_loss": 1.3 * k + 0.35,
        "val/cls_loss": 2.1 * k + 0.45,
        "metrics/precision(B)": 0.9 - 0.5 * k,
        "metrics/recall(B)": 0.85 - 0.5 * k,
        "metrics/mAP50(B)": 0.8 - 0.5 * k,
        "metrics/mAP50-95(B)": 0.6 - 0.4 * k,
        "lr/pg0": 0.01 * (1 - epoch / 100),
        "lr/pg1": 0.01 * (1 - epoch / 100),
    }


class TrainingLoop:
    """A plain training loop on a :class:`HubSession`, in a thread: one epoch per ``epoch_seconds``
    (simulated training time) until ``max_epochs`` or until the hub asks it to stop
    (``session.stop_requested``, set from a heartbeat reply); then it reports ``cancelled`` and closes.
    """

    def __init__(self, session: HubSession, start: int, max_epochs: int, epoch_seconds: float) -> None:
        self.session = session
        self.start_epoch = start
        self.max_epochs = max_epochs
        self.epoch_seconds = epoch_seconds
        self.stopped_at: int | None = None
        self.error: BaseException | None = None
        self._abort = threading.Event()
        self.thread = threading.Thread(target=self._run, name="training-loop", daemon=True)

    def start(self) -> TrainingLoop:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            for epoch in range(self.start_epoch, self.max_epochs):
                if self.session.stop_requested:
                    self.stopped_at = epoch
                    self.session.set_status("cancelled")
                    break
                self.session.queue_metrics(epoch, yolo_like(epoch))
                self.session.upload_metrics()
                if self._abort.wait(self.epoch_seconds):
                    return
            self.session.close(timeout=10)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self, timeout: float) -> None:
        """Wait for the loop to end; fail if it does not within ``timeout`` or it raised."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            self._abort.set()
            self.thread.join(5)
            raise AssertionError("the training loop did not stop")
        if self.error is not None:
            raise self.error
