"""End to end: a real Ultralytics training, attached to a real trainhub server, checked over HTTP.

A child process (see ``yolo_env``) builds ``YOLO("yolov8n.yaml")`` (no weight download), attaches
trainhub and trains 3 epochs on a tiny synthetic dataset on the CPU. The test then reads the
server's native API: the model is done, every epoch 0..2 has its losses and metrics (the last
epoch too, which the original HUB client could drop), the final evaluation is the model's final
metrics and not an epoch 3, and the final checkpoint is byte-for-byte the local best.pt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from yolo_env import (
    DETECT_EPOCH_KEYS,
    TINY_TRAIN_ARGS,
    ChildRun,
    child_env,
    describe,
    make_dataset,
    run_child,
)

from trainhub.protocol import API_PREFIX

pytest.importorskip("ultralytics")

pytestmark = pytest.mark.heavy

CHILD = """
import json, sys
from ultralytics import YOLO
from trainhub.integrations.ultralytics import attach

data, name, epochs, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
model = YOLO("yolov8n.yaml")
attach(model, project="itest", name=name)
model.train(data=data, epochs=epochs, name=name, **args)
trainer = model.trainer
print("TRAINHUB_TEST_RESULT " + json.dumps({
    "model_id": trainer.hub_session.model_id,
    "model_url": trainer.hub_session.model_url,
    "best": str(trainer.best),
}))
"""

EPOCH_KEYS = set(DETECT_EPOCH_KEYS)
#: Added at epoch 0 only.
MODEL_INFO_KEYS = {"model/parameters", "model/GFLOPs", "model/speed_PyTorch(ms)"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def api(hub: Any) -> httpx.Client:
    return httpx.Client(base_url=hub.url + API_PREFIX, headers=hub.headers(), timeout=30.0, trust_env=False)


def hub_env(tmp: Path, hub: Any) -> dict[str, str]:
    return child_env(
        tmp,
        {
            "TRAINHUB_URL": hub.url,
            "TRAINHUB_API_KEY": hub.api_key,
            "TRAINHUB_EVENTS": "0",  # usage events are never sent from tests
            "XDG_CONFIG_HOME": str(tmp / "xdg"),
        },
    )


def check_child(run: ChildRun, started: float) -> None:
    assert run.returncode == 0, describe(run)
    print(f"child training took {time.monotonic() - started:.1f} s")


#: Directory holding ultralytics 8.4.114 (the last release with its own HUB callbacks), made with
#: ``pip install --no-deps --target DIR ultralytics==8.4.114``; the old-client case runs only if set.
# The HUB-era ultralytics (8.4.114) that scripts/test.sh installs beside the newest one; another
# directory can be named with TRAINHUB_TEST_ULTRALYTICS_OLD.
_UL114 = Path(sys.prefix) / "ul114"
OLD_ULTRALYTICS = os.environ.get("TRAINHUB_TEST_ULTRALYTICS_OLD") or (
    str(_UL114) if (_UL114 / "ultralytics").is_dir() else None
)


@pytest.mark.parametrize(
    "ultralytics_path",
    [
        pytest.param(None, id="installed"),
        pytest.param(
            OLD_ULTRALYTICS,
            id="8.4.114",
            marks=pytest.mark.skipif(not OLD_ULTRALYTICS, reason="TRAINHUB_TEST_ULTRALYTICS_OLD not set"),
        ),
    ],
)
def test_three_epochs_reach_the_hub_complete(
    tmp_path: Path, hub_server: Any, ultralytics_path: str | None
) -> None:
    data_yaml = make_dataset(tmp_path / "data")
    env = hub_env(tmp_path, hub_server)
    if ultralytics_path:
        # The old release also registers its own HUB callbacks on every trainer (and again in the
        # final evaluation); attach() must keep them from sending through our session.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ultralytics_path, env.get("PYTHONPATH")]))
    started = time.monotonic()
    run = run_child(tmp_path, CHILD, [str(data_yaml), "e2e", "3", json.dumps(TINY_TRAIN_ARGS)], env)
    check_child(run, started)
    model_id = run.result["model_id"]
    best = Path(run.result["best"])
    assert best.is_relative_to(tmp_path)  # runs stayed in the test's directory

    # Printed twice: when training starts and when it ends.
    assert run.stdout.count(f"View model at {hub_server.url}/models/{model_id}") == 2, describe(run)
    assert "internal error" not in run.stderr, describe(run)

    with api(hub_server) as client:
        model = client.get(f"/models/{model_id}").raise_for_status().json()
        assert model["status"] == "done"
        assert (model["name"], model["project"], model["epochs"], model["task"]) == (
            "e2e",
            "itest",
            3,
            "detect",
        )
        assert model["config"]["epochs"] == 3 and model["config"]["imgsz"] == 64
        # The final evaluation of best.pt is the run's final metrics, not an epoch 3.
        assert {"metrics/mAP50-95(B)", "metrics/mAP50(B)"} <= set(model["final_metrics"])

        listed = client.get("/models", params={"project": "itest"}).raise_for_status().json()
        assert model_id in json.dumps(listed)

        rows = client.get(f"/models/{model_id}/metrics").raise_for_status().json()
        rows = rows["epochs"] if isinstance(rows, dict) else rows
        by_epoch = {row["epoch"]: row["metrics"] for row in rows}
        assert sorted(by_epoch) == [0, 1, 2], rows
        for epoch, metrics in by_epoch.items():
            expected = EPOCH_KEYS | MODEL_INFO_KEYS if epoch == 0 else EPOCH_KEYS
            assert set(metrics) == expected, (epoch, sorted(metrics))
            assert isinstance(metrics["train/box_loss"], float) and metrics["train/box_loss"] > 0

        series = client.get(f"/models/{model_id}/metrics/series", params={"name": "train/box_loss"})
        assert series.raise_for_status().json()["epochs"] == [0, 1, 2]

        listing = client.get(f"/models/{model_id}/checkpoints").raise_for_status().json()
        checkpoints = {c["kind"]: c for c in listing}
        assert checkpoints["final"]["sha256"] == sha256(best)
        assert checkpoints["final"]["size"] == best.stat().st_size
        assert checkpoints["best"]["sha256"] == sha256(best)
        # download_url is relative to the hub root, and needs the key like every native API call
        download = httpx.get(
            hub_server.url + checkpoints["final"]["download_url"],
            headers=hub_server.headers(),
            trust_env=False,
            timeout=30.0,
        )
        assert hashlib.sha256(download.raise_for_status().content).hexdigest() == sha256(best)


def test_the_yolo_command_wrapper_reports_without_code_changes(tmp_path: Path, hub_server: Any) -> None:
    """``python -m trainhub.integrations.ultralytics train ...``, configured by environment only."""
    data_yaml = make_dataset(tmp_path / "data")
    args = [f"{key}={value}" for key, value in TINY_TRAIN_ARGS.items()]
    started = time.monotonic()
    run = run_child(
        tmp_path,
        "",
        ["train", "model=yolov8n.yaml", f"data={data_yaml}", "epochs=1", "name=wrapped", *args],
        hub_env(tmp_path, hub_server),
        module="trainhub.integrations.ultralytics",
    )
    check_child(run, started)
    match = re.search(r"View model at (\S+)/models/([0-9a-f]{20})", run.stdout)
    assert match, describe(run)
    assert match.group(1) == hub_server.url
    model_id = match.group(2)

    with api(hub_server) as client:
        model = client.get(f"/models/{model_id}").raise_for_status().json()
        # no project argument and no TRAINHUB_PROJECT: the hub's default project
        assert (model["status"], model["name"], model["project"], model["epochs"]) == (
            "done",
            "wrapped",
            "default",
            1,
        )
        rows = client.get(f"/models/{model_id}/metrics").raise_for_status().json()
        rows = rows["epochs"] if isinstance(rows, dict) else rows
        assert [row["epoch"] for row in rows] == [0]
        kinds = {c["kind"] for c in client.get(f"/models/{model_id}/checkpoints").raise_for_status().json()}
        assert {"best", "final"} <= kinds


def test_mid_run_checkpoints_fill_the_last_slot(tmp_path: Path, hub_server: Any) -> None:
    """With the checkpoint rate limit at 0 every on_model_save uploads last.pt (default: 900 s)."""
    data_yaml = make_dataset(tmp_path / "data")
    env = hub_env(tmp_path, hub_server)
    env.update(TRAINHUB_RATE_LIMIT_CKPT="0", TRAINHUB_FINAL_TIMEOUT="30")
    started = time.monotonic()
    run = run_child(tmp_path, CHILD, [str(data_yaml), "ckpt", "2", json.dumps(TINY_TRAIN_ARGS)], env)
    check_child(run, started)
    assert "not sent yet" not in run.stderr + run.stdout, describe(run)
    best = Path(run.result["best"])

    with api(hub_server) as client:
        listing = client.get(f"/models/{run.result['model_id']}/checkpoints").raise_for_status().json()
        checkpoints = {c["kind"]: c for c in listing}
        assert checkpoints["last"]["epoch"] == 1  # the newest mid-run upload wins the slot
        assert checkpoints["final"]["epoch"] == 1  # like the seed: the last epoch index
        assert checkpoints["final"]["sha256"] == sha256(best)
