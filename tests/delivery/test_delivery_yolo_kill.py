"""kill -9 of a real (tiny) Ultralytics training with attach(); `trainhub sync` delivers every epoch
it finished, each exactly once."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from delivery_helpers import PASS, Action, Child, FaultProxy, events_total, run_cli, server_state

pytest.importorskip("ultralytics")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integrations"))
from yolo_env import TINY_TRAIN_ARGS, child_env, make_dataset

if TYPE_CHECKING:
    from conftest import HubServer

pytestmark = pytest.mark.heavy

N = 3

CHILD = """
import json, sys
from ultralytics import YOLO
from trainhub.integrations.ultralytics import attach

data, args = sys.argv[1], json.loads(sys.argv[2])
model = YOLO("yolov8n.yaml")
attach(model, project="kill", name="killed")

def marker(trainer):  # registered after attach(): the hub callback of this epoch has returned
    print(f"EPOCH_DONE {trainer.epoch} {trainer.hub_session.model_id}", flush=True)

model.add_callback("on_fit_epoch_end", marker)
model.train(data=data, epochs=50, name="killed", **args)
"""


@pytest.fixture
def black_hole(hub_server: HubServer) -> Iterator[FaultProxy]:
    """Passes everything on except metrics, which are never answered (nor stored)."""

    def rule(method: str, path: str, n: int) -> Action:
        return Action("answer", 503) if path.endswith("/metrics") else PASS

    proxy = FaultProxy(hub_server.url, rule)
    yield proxy
    proxy.close()


def test_kill9_of_a_real_training_then_sync_delivers_every_epoch_once(
    tmp_path: Path, hub_server: HubServer, black_hole: FaultProxy
) -> None:
    data_yaml = make_dataset(tmp_path / "data")
    env = child_env(
        tmp_path,
        {"TRAINHUB_URL": black_hole.url, "TRAINHUB_API_KEY": str(hub_server.api_key), "TRAINHUB_EVENTS": "1"},
    )
    child = Child(tmp_path, CHILD, [str(data_yaml), __import__("json").dumps(TINY_TRAIN_ARGS)], env)
    try:
        line = child.wait_for(f"EPOCH_DONE {N - 1} ", timeout=240)
        child.kill9()
    finally:
        child.close()
    model_id = line.split()[2]
    assert server_state(hub_server, model_id)["metrics"] == []  # nothing got through

    sync_env = {**env, "TRAINHUB_URL": hub_server.url}
    done = run_cli(["sync", "--spool-dir", str(tmp_path / "spool")], sync_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Summary: 1 spools, \d+ items sent, \d+ already present, 0 failed, 0 left", done.stdout)
    state = server_state(hub_server, model_id)
    epochs = [row["epoch"] for row in state["metrics"]]
    # Every epoch it finished before the kill (at least N), each once, in order, with the real keys.
    assert len(epochs) >= N and epochs == list(range(len(epochs))), epochs
    assert all(
        "train/box_loss" in row["metrics"] and "metrics/mAP50(B)" in row["metrics"]
        for row in state["metrics"]
    )
    assert events_total(hub_server) == 1  # the "train" usage event, once
