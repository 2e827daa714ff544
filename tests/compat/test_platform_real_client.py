"""End to end with the newest ultralytics (Platform protocol, ultralytics-platform SDK).

``model.train(project="alice/cats", name=...)`` with ``ULTRALYTICS_PLATFORM_URL`` and
``ULTRALYTICS_API_KEY`` set streams every epoch, the checkpoint and the completion into trainhub;
the trained model then loads back by ``ul://alice/cats/<name>``. A stop requested through the
native API (``POST /api/v1/models/{id}/stop``) stops a long run at its next epoch.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from compat_helpers import TINY, api, platform_env, sha256_file
from yolo_env import CHILD_TIMEOUT, describe, make_dataset, run_child

pytest.importorskip("ultralytics")
pytest.importorskip("ultralytics_platform")

pytestmark = pytest.mark.heavy

TRAIN = """
import hashlib, json, sys
from ultralytics import YOLO

data, name, epochs, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
model = YOLO("yolov8n.yaml")
model.train(data=data, epochs=epochs, project="alice/cats", name=name, exist_ok=True, **args)
trainer = model.trainer
platform = trainer.platform or {}
result = {"best": str(trainer.best), "epoch": trainer.epoch, "model_id": platform.get("model_id")}
if sys.argv[5] == "load":
    loaded = YOLO(f"ul://alice/cats/{name}")
    result["loaded_sha"] = hashlib.sha256(open(loaded.ckpt_path, "rb").read()).hexdigest()
print("TRAINHUB_TEST_RESULT " + json.dumps(result))
"""


def _args(epochs: int) -> list[str]:
    import json

    return [str(epochs), json.dumps(TINY)]


def test_platform_client_streams_every_epoch_checkpoint_and_completion(
    hub_server: Any, tmp_path: Path
) -> None:
    data = make_dataset(tmp_path / "ds")
    run = run_child(
        tmp_path, TRAIN, [str(data), "exp1", *_args(3), "load"], platform_env(tmp_path, hub_server)
    )
    assert run.returncode == 0, describe(run)
    model_id = run.result["model_id"]
    assert model_id, describe(run)
    with api(hub_server) as c:
        model = c.get(f"/models/{model_id}").json()
        epochs = c.get(f"/models/{model_id}/metrics").json()
        ckpts = {k["kind"]: k for k in c.get(f"/models/{model_id}/checkpoints").json()}
    assert (model["project"], model["name"], model["status"]) == ("cats", "exp1", "done"), model
    assert [e["epoch"] for e in epochs] == [0, 1, 2], epochs
    assert all("val/box_loss" in e["metrics"] and "lr" in e["metrics"] for e in epochs)
    assert "model/parameters" in epochs[0]["metrics"]
    assert "metrics/mAP50-95(B)" in model["final_metrics"], model  # the final-eval epoch 3
    best = Path(run.result["best"])
    assert ckpts["final"]["sha256"] == sha256_file(best)
    assert run.result["loaded_sha"] == sha256_file(best)


def test_a_stop_requested_in_trainhub_stops_platform_training_at_the_next_epoch(
    hub_server: Any, tmp_path: Path
) -> None:
    data = make_dataset(tmp_path / "ds")
    epochs = 40
    script = tmp_path / "train_child.py"
    script.write_text(textwrap.dedent(TRAIN))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(data), "stopme", *_args(epochs), "no"],
        cwd=tmp_path,
        env=platform_env(tmp_path, hub_server),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        model_id = None
        deadline = time.monotonic() + CHILD_TIMEOUT
        with api(hub_server) as c:
            while time.monotonic() < deadline and proc.poll() is None:
                found = [
                    m for m in c.get("/models", params={"project": "cats"}).json() if m["name"] == "stopme"
                ]
                if found and found[0]["last_epoch"] is not None:
                    model_id = found[0]["id"]
                    break
                time.sleep(0.1)
            assert model_id is not None, "no epoch reached trainhub"
            assert c.post(f"/models/{model_id}/stop").status_code == 200
            out, _ = proc.communicate(timeout=CHILD_TIMEOUT)
            assert proc.returncode == 0, out[-4000:]
            model = c.get(f"/models/{model_id}").json()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Training cancelled from Platform" in out
    assert model["status"] == "cancelled", model
    assert model["last_epoch"] is not None and model["last_epoch"] < epochs - 5, model
