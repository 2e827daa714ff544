"""End to end with the unmodified HUB-era client: ultralytics 8.4.114 + hub-sdk 0.0.25.

A model is created in trainhub (tiny yolov8n.yaml, 3 epochs) whose ``data`` is a dataset zip
pushed with ``trainhub datasets push``; a child process then runs
``YOLO("<hub>/models/<id>?api_key=<key>").train()`` with no local files, exactly as HUB users did.

About "every epoch": the HUB client flushes metrics at most every 3 s, from the epoch-end callback
only, with no flush at the end (reference §2.5, quirk 1). A tiny epoch takes well under 3 s, so an
unmodified run would send no metrics at all. The child therefore makes each epoch last a little
over 3 s (a sleep in its own ``on_fit_epoch_end`` callback, after the client's): the client is not
changed, and it sends every epoch, including the final evaluation (epoch 3), which trainhub
stores as the final metrics. Mid-run checkpoints need 900 s; the interrupt test forces them the
way the reference does (resetting the client's checkpoint timer before each save).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from compat_helpers import TINY, UL114, api, dataset_zip, hub_env, new_model, sha256_file
from yolo_env import describe, run_child

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        not (UL114 / "ultralytics").is_dir() or not (UL114 / "hub_sdk").is_dir(),
        reason=f"the HUB-era client is not installed in {UL114} (scripts/test.sh installs it: "
        "pip install --no-deps --target <venv>/ul114 ultralytics==8.4.114 hub-sdk==0.0.25)",
    ),
]

EPOCHS = 3

TRAIN = """
import json, os, signal, sys, time, urllib.request
from ultralytics import YOLO

url, mode, hub, key, model_id = sys.argv[1:6]

def native(path):
    req = urllib.request.Request(hub + "/api/v1" + path, headers={"Authorization": "Bearer " + key})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)

model = YOLO(url)
assert model.session is not None, "no HUB session"

def slow_epoch(trainer):
    # Longer than the client's 3 s metrics rate limit, so the unmodified client flushes every epoch
    # (ultralytics runs integration callbacks after user callbacks, so the flush follows the sleep).
    time.sleep(3.3)

model.add_callback("on_fit_epoch_end", slow_epoch)
if mode == "interrupt":
    def force_checkpoint(trainer):
        trainer.hub_session.timers["ckpt"] = 0  # the 900 s checkpoint rate limit, forced (reference §5)

    def die_after_epoch_1(trainer):
        # At the start of epoch 2, so epoch 1's callbacks (the client's runs after ours) are done.
        if trainer.epoch != 2:
            return
        deadline = time.time() + 60
        while time.time() < deadline:
            last = [c for c in native(f"/models/{model_id}/checkpoints") if c["kind"] == "last"]
            epochs = {e["epoch"] for e in native(f"/models/{model_id}/metrics")}
            if last and last[0]["epoch"] == 1 and {0, 1} <= epochs:
                break
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)

    model.add_callback("on_train_epoch_end", force_checkpoint)
    model.add_callback("on_train_epoch_start", die_after_epoch_1)
model.train()
trainer = model.trainer
print("TRAINHUB_TEST_RESULT " + json.dumps({"best": str(trainer.best), "start_epoch": trainer.start_epoch}))
"""

LOAD = """
import hashlib, json, sys
from ultralytics import YOLO
model = YOLO(sys.argv[1])
path = model.ckpt_path
sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
print("TRAINHUB_TEST_RESULT " + json.dumps({"path": path, "sha": sha}))
"""


def push(hub: Any, tmp: Path) -> str:
    """``trainhub datasets push`` a fresh dataset zip; returns the dataset reference."""
    zip_path = dataset_zip(tmp)
    out = subprocess.run(
        [sys.executable, "-m", "trainhub", "datasets", "push", str(zip_path), "--url", hub.url],
        env={**hub_env(tmp, hub), "TRAINHUB_API_KEY": hub.api_key},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    ref = out.stdout.strip().rsplit(" ", 1)[-1]
    assert ref.startswith("trainhub://datasets/"), out.stdout
    return ref


def hub_model(hub: Any, tmp: Path, name: str) -> str:
    config = {
        "model": "yolov8n.yaml",
        "data": push(hub, tmp),
        "epochs": EPOCHS,
        "deterministic": True,
        **TINY,
    }
    return new_model(hub, name=name, config=config, epochs=EPOCHS)


def train(hub: Any, tmp: Path, model_id: str, mode: str) -> Any:
    url = f"{hub.url}/models/{model_id}?api_key={hub.api_key}"
    return run_child(tmp, TRAIN, [url, mode, hub.url, hub.api_key, model_id], hub_env(tmp, hub))


def check_done(hub: Any, model_id: str, best: Path) -> dict[str, Any]:
    with api(hub) as c:
        model = c.get(f"/models/{model_id}").json()
        epochs = c.get(f"/models/{model_id}/metrics").json()
        ckpts = {k["kind"]: k for k in c.get(f"/models/{model_id}/checkpoints").json()}
    assert model["status"] == "done", model
    assert [e["epoch"] for e in epochs] == list(range(EPOCHS)), epochs
    for e in epochs:
        assert "train/box_loss" in e["metrics"] and "metrics/mAP50-95(B)" in e["metrics"], e
    assert "model/parameters" in epochs[0]["metrics"]
    # The final evaluation (epoch == epochs) is the final metrics, not an epoch 3.
    assert "metrics/mAP50-95(B)" in model["final_metrics"], model
    assert ckpts["final"]["sha256"] == sha256_file(best) == ckpts["best"]["sha256"]
    assert ckpts["final"]["epoch"] == EPOCHS - 1
    return model


def test_hub_client_trains_a_hub_model_with_a_hub_dataset_and_loads_it_back(
    hub_server: Any, tmp_path: Path
) -> None:
    model_id = hub_model(hub_server, tmp_path, "hub-e2e")
    run = train(hub_server, tmp_path, model_id, "full")
    assert run.returncode == 0, describe(run)
    best = Path(run.result["best"])
    check_done(hub_server, model_id, best)

    # Loading the trained model by its hub URL downloads exactly the final best.pt.
    load_dir = tmp_path / "load"
    load_dir.mkdir()
    url = f"{hub_server.url}/models/{model_id}?api_key={hub_server.api_key}"
    loaded = run_child(load_dir, LOAD, [url], hub_env(load_dir, hub_server))
    assert loaded.returncode == 0, describe(loaded)
    assert loaded.result["sha"] == sha256_file(best)
    assert Path(loaded.result["path"]).parts[-3:] == ("hub", model_id, "best.pt")


def test_hub_client_resumes_an_interrupted_run_from_the_hub(hub_server: Any, tmp_path: Path) -> None:
    model_id = hub_model(hub_server, tmp_path, "hub-resume")
    first = train(hub_server, tmp_path, model_id, "interrupt")
    assert first.returncode == -signal.SIGKILL, describe(first)
    with api(hub_server) as c:
        doc = c.get(f"/models/{model_id}").json()
        assert doc["status"] == "training"
    with httpx.Client(
        base_url=hub_server.url, headers={"x-api-key": hub_server.api_key}, trust_env=False
    ) as c:
        hub_doc = c.get(f"/v1/models/{model_id}").json()["data"]
    assert hub_doc["has_last_weights"] is True and hub_doc["resume"].endswith(".pt"), hub_doc

    second = train(hub_server, tmp_path, model_id, "full")  # the same, unmodified call
    assert second.returncode == 0, describe(second)
    assert second.result["start_epoch"] == 2, describe(second)
    check_done(hub_server, model_id, Path(second.result["best"]))
