"""Fakes for the callback tests: a recording session, a trainer namespace and a manual clock."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSession:
    """Records every call; has the fields of HubSession the callbacks use (and no ``clock``)."""

    def __init__(self, metrics_limit: float = 3.0, ckpt_limit: float = 900.0) -> None:
        self.rate_limits = {"metrics": metrics_limit, "ckpt": ckpt_limit, "heartbeat": 300.0}
        self.timers: dict[str, float] = {}
        self.metrics_queue: dict[int, str] = {}
        self.model_id = "0123456789abcdef0123"
        self.model_url = "http://hub.test/models/0123456789abcdef0123"
        self.alive = True
        self.stop_requested = False
        self.calls: list[tuple[Any, ...]] = []

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]

    def queue_metrics(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        self.calls.append(("queue_metrics", epoch, dict(metrics)))
        self.metrics_queue[epoch] = json.dumps(dict(metrics))

    def upload_metrics(self) -> None:
        self.calls.append(("upload_metrics", sorted(self.metrics_queue)))

    def upload_model(
        self, epoch: int, weights: str | Path, is_best: bool = False, map: float = 0.0, final: bool = False
    ) -> None:
        self.calls.append(("upload_model", epoch, weights, {"is_best": is_best, "map": map, "final": final}))

    def set_final_metrics(self, metrics: Mapping[str, Any]) -> None:
        self.calls.append(("set_final_metrics", dict(metrics)))

    def send_event(self, kind: str, task: str | None = None, mode: str | None = None) -> None:
        self.calls.append(("send_event", kind, task, mode))

    def close(self, timeout: float | None = None) -> None:
        self.calls.append(("close", self.alive))


def make_trainer(session: Any = None, **overrides: Any) -> SimpleNamespace:
    """A trainer with the attributes the callbacks read, epoch 0, after validation."""

    def label_loss_items(loss_items: Any = None, prefix: str = "train") -> Any:
        keys = [f"{prefix}/box_loss", f"{prefix}/cls_loss", f"{prefix}/dfl_loss"]
        return keys if loss_items is None else dict(zip(keys, loss_items, strict=True))

    trainer = SimpleNamespace(
        hub_session=session,
        epoch=0,
        epochs=3,
        tloss=(1.5, 2.5, 1.25),
        label_loss_items=label_loss_items,
        metrics={"metrics/mAP50(B)": 0.5, "metrics/mAP50-95(B)": 0.25, "val/box_loss": 1.75},
        lr={"lr/pg0": 0.01},
        last=Path("/runs/train/weights/last.pt"),
        best=Path("/runs/train/weights/best.pt"),
        best_fitness=0.3,
        fitness=0.3,
        stop=False,
        args=SimpleNamespace(task="detect", mode="train"),
    )
    for key, value in overrides.items():
        setattr(trainer, key, value)
    return trainer
