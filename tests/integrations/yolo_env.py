"""Helpers to run the real Ultralytics offline in a child process (see the reference, section 5).

Ultralytics changes its behaviour under pytest (it turns integration callbacks off and writes runs
under site-packages), reads several environment variables only at import, and would download a
font on the first plot. So every real training runs in a fresh child Python process, started
from a script whose name does not contain "pytest", with:

* the pytest / GitHub Actions variables removed;
* ``YOLO_OFFLINE=1`` (no DNS probes, update checks, analytics or auto-install);
* its own ``YOLO_CONFIG_DIR`` with a pre-written ``settings.json`` (datasets, weights and runs
  under the test's temporary directory, ``sync`` off) and matplotlib's DejaVuSans copied as
  ``Arial.ttf`` (``check_font`` is not gated by ``YOLO_OFFLINE``);
* its own ``MPLCONFIGDIR`` and ``TRAINHUB_SPOOL_DIR``;
* ``NO_PROXY`` for 127.0.0.1;
* ``TRAINHUB_RAISE_CALLBACK_ERRORS=1`` so that a bug in a callback fails the run instead of
  being logged and swallowed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Variables that make Ultralytics believe it runs under a test runner or in CI.
SCRUBBED = ("PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS", "GITHUB_ACTIONS", "GITHUB_WORKFLOW", "RUNNER_OS")

#: Longest a child training may take; a broken upload must not hang the suite.
CHILD_TIMEOUT = 240.0

#: Marker line a child script prints before its JSON result.
RESULT_MARKER = "TRAINHUB_TEST_RESULT "

#: Training arguments of a tiny CPU run that downloads nothing (no project: runs go to runs_dir).
TINY_TRAIN_ARGS: dict[str, Any] = {
    "imgsz": 64,
    "batch": 4,
    "workers": 0,
    "device": "cpu",
    "amp": False,
    "plots": False,
    "exist_ok": True,
    "seed": 0,
    "deterministic": True,
    "val": True,
}


@dataclass
class ChildRun:
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any]


#: What Ultralytics 8.4 reports for a detection model every epoch (losses, metrics, learning rates).
DETECT_EPOCH_KEYS = frozenset(
    {
        "train/box_loss",
        "train/cls_loss",
        "train/dfl_loss",
        "metrics/precision(B)",
        "metrics/recall(B)",
        "metrics/mAP50(B)",
        "metrics/mAP50-95(B)",
        "val/box_loss",
        "val/cls_loss",
        "val/dfl_loss",
        "lr/pg0",
        "lr/pg1",
        "lr/pg2",
    }
)


def _font_source() -> Path:
    import matplotlib

    return Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"


def child_env(tmp: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of one child run, with its config, cache and spool directories under ``tmp``."""
    config_dir = tmp / "yolo-config"
    (config_dir / "Ultralytics").mkdir(parents=True, exist_ok=True)
    font = _font_source()
    shutil.copy(font, config_dir / "Ultralytics" / "Arial.ttf")
    shutil.copy(font, config_dir / "Ultralytics" / "Arial.Unicode.ttf")
    settings = {
        "datasets_dir": str(tmp / "datasets"),
        "weights_dir": str(tmp / "weights"),
        "runs_dir": str(tmp / "runs"),
        "sync": False,
    }
    (config_dir / "Ultralytics" / "settings.json").write_text(json.dumps(settings))

    env = {key: value for key, value in os.environ.items() if key not in SCRUBBED}
    # Any ULTRALYTICS_* / hub settings of the developer's shell must not leak into the child.
    for key in list(env):
        if key.startswith(("ULTRALYTICS_", "TRAINHUB_")):
            del env[key]
    env.update(
        YOLO_OFFLINE="1",
        YOLO_AUTOINSTALL="false",
        YOLO_CONFIG_DIR=str(config_dir),
        MPLCONFIGDIR=str(tmp / "mpl"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        TRAINHUB_SPOOL_DIR=str(tmp / "spool"),
        TRAINHUB_RAISE_CALLBACK_ERRORS="1",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="2",
    )
    env.update(extra or {})
    return env


def make_dataset(root: Path) -> Path:
    """Write a tiny deterministic detection dataset and return its ``data.yaml``.

    8 train and 4 val 64x64 PNGs on a grey background, each with one or two filled rectangles:
    red ones are class 0 ("red"), blue ones class 1 ("blue"); YOLO label files next to them.
    """
    from PIL import Image, ImageDraw

    rng = random.Random(20240601)
    colours = [(220, 30, 30), (30, 30, 220)]
    for split, count in (("train", 8), ("val", 4)):
        images = root / "images" / split
        labels = root / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = Image.new("RGB", (64, 64), (128, 128, 128))
            draw = ImageDraw.Draw(image)
            lines = []
            for box in range(1 + index % 2):
                cls = (index + box) % 2
                w, h = rng.randint(14, 28), rng.randint(14, 28)
                x0, y0 = rng.randint(0, 64 - w), rng.randint(0, 64 - h)
                draw.rectangle((x0, y0, x0 + w - 1, y0 + h - 1), fill=colours[cls])
                lines.append(
                    f"{cls} {(x0 + w / 2) / 64:.6f} {(y0 + h / 2) / 64:.6f} {w / 64:.6f} {h / 64:.6f}"
                )
            image.save(images / f"{split}{index:02d}.png")
            (labels / f"{split}{index:02d}.txt").write_text("\n".join(lines) + "\n")
    data_yaml = root / "data.yaml"
    data_yaml.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: red\n  1: blue\n")
    return data_yaml


def run_child(
    tmp: Path,
    script: str,
    args: list[str],
    env: Mapping[str, str],
    *,
    module: str | None = None,
    timeout: float = CHILD_TIMEOUT,
) -> ChildRun:
    """Run ``script`` (or ``python -m module``) in a child process in ``tmp``; parse its result line."""
    if module is None:
        path = tmp / "train_child.py"  # no "pytest" in the name: Ultralytics looks at argv[0]
        path.write_text(textwrap.dedent(script))
        command = [sys.executable, str(path), *args]
    else:
        command = [sys.executable, "-m", module, *args]
    proc = subprocess.run(
        command, cwd=tmp, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    result: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER) :])
    return ChildRun(proc.returncode, proc.stdout, proc.stderr, result)


def describe(run: ChildRun) -> str:
    """The tail of a child's output, for assertion messages."""
    return (
        f"exit {run.returncode}\n--- stdout ---\n{run.stdout[-6000:]}\n--- stderr ---\n{run.stderr[-6000:]}"
    )
