"""Hook order of a tiny real Ultralytics training, and what our callbacks do at each hook.

The child process records every epoch-level callback the real trainer runs, interleaved with the
calls our callbacks make on a recording session (``trainhub.start_session`` is replaced by it in
the child), and the test compares the whole sequence with the expected list. This pins the trainer
behaviour the callbacks rely on (final_eval's extra on_fit_epoch_end with no on_train_epoch_end
before it, on_model_save before on_fit_epoch_end, ...) as well as our reaction to it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from yolo_env import DETECT_EPOCH_KEYS, TINY_TRAIN_ARGS, child_env, describe, make_dataset, run_child

pytest.importorskip("ultralytics")

CHILD = """
import json, sys
from pathlib import Path

import trainhub
from trainhub.callbacks import hub
from trainhub.integrations.ultralytics import attach

log = []

class RecordingSession:
    def __init__(self, **kwargs):
        json.dumps(kwargs["config"])  # the config must be JSON-able
        log.append(["session", "__init__", {k: kwargs[k] for k in ("project", "name", "epochs", "task")}])
        self.rate_limits = kwargs["rate_limits"]
        self.timers, self.metrics_queue, self.alive = {}, {}, True
        self.model_url = "http://hub.test/models/0123456789abcdef0123"

    def queue_metrics(self, epoch, metrics):
        self.metrics_queue[epoch] = json.dumps(metrics)
        log.append(["session", "queue_metrics", epoch, sorted(metrics)])

    def upload_metrics(self):
        log.append(["session", "upload_metrics", sorted(self.metrics_queue)])

    def upload_model(self, epoch, weights, is_best=False, map=0.0, final=False):
        log.append(["session", "upload_model", epoch, Path(weights).name, final])

    def set_final_metrics(self, metrics):
        log.append(["session", "set_final_metrics", sorted(metrics)])

    def send_event(self, kind, task=None, mode=None):
        log.append(["session", "send_event", kind, task, mode])

    def close(self, timeout=None):
        log.append(["session", "close", self.alive])

trainhub.start_session = RecordingSession

from ultralytics import YOLO

BATCH_LEVEL = {"on_train_batch_start", "on_train_batch_end", "optimizer_step", "on_before_zero_grad",
               "on_val_batch_start", "on_val_batch_end", "on_params_update"}

model = YOLO("yolov8n.yaml")
for event in list(model.callbacks):
    if event not in BATCH_LEVEL:
        model.add_callback(event, lambda obj, e=event: log.append(
            ["hook", e, getattr(obj, "epoch", "no epoch") if type(obj).__name__.endswith("Trainer")
                      else type(obj).__name__]))
# Limits no run reaches: uploads happen only at the end, so the sequence does not depend on timing.
attach(model, project="order", name="run", rate_limits={"metrics": 1e9, "ckpt": 1e9, "heartbeat": 1e9})
hub.set_default_session(RecordingSession(config={}, project=None, name=None, epochs=None, task=None,
                                         rate_limits={}))
log.clear()
model.train(data=sys.argv[1], epochs=2, name="order", **json.loads(sys.argv[2]))
print("TRAINHUB_TEST_RESULT " + json.dumps({"log": log}))
"""

EPOCH_KEYS = sorted(DETECT_EPOCH_KEYS)
MODEL_INFO_KEYS = ["model/GFLOPs", "model/parameters", "model/speed_PyTorch(ms)"]
FINAL_KEYS = sorted(["metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)"])


def epoch(n: int, keys: list[str]) -> list[list[object]]:
    return [
        ["hook", "on_train_epoch_start", n],
        ["hook", "on_train_epoch_end", n],
        ["hook", "on_val_start", "DetectionValidator"],
        ["hook", "on_val_end", "DetectionValidator"],
        ["hook", "on_model_save", n],
        ["hook", "on_fit_epoch_end", n],
        ["session", "queue_metrics", n, keys],
    ]


EXPECTED = [
    ["hook", "on_pretrain_routine_start", "no epoch"],
    ["session", "__init__", {"project": "order", "name": "run", "epochs": 2, "task": "detect"}],
    ["hook", "on_pretrain_routine_end", "no epoch"],
    ["hook", "on_train_start", "no epoch"],
    ["session", "send_event", "train", "detect", "train"],
    *epoch(0, sorted(EPOCH_KEYS + MODEL_INFO_KEYS)),
    *epoch(1, EPOCH_KEYS),
    # final_eval: validates best.pt, then on_fit_epoch_end with epoch 2 and no training pass
    ["hook", "on_val_start", "DetectionValidator"],
    ["hook", "on_val_end", "DetectionValidator"],
    ["hook", "on_fit_epoch_end", 2],
    ["session", "set_final_metrics", FINAL_KEYS],
    ["hook", "on_train_end", 1],
    ["session", "upload_metrics", [0, 1]],
    ["session", "upload_model", 1, "best.pt", True],
    ["session", "close", False],
    ["hook", "teardown", 1],
]


@pytest.mark.heavy
def test_hook_order_of_a_real_training_and_our_reactions(tmp_path: Path) -> None:
    data_yaml = make_dataset(tmp_path / "data")
    run = run_child(tmp_path, CHILD, [str(data_yaml), json.dumps(TINY_TRAIN_ARGS)], child_env(tmp_path))
    assert run.returncode == 0, describe(run)
    assert run.result["log"] == EXPECTED, describe(run)
