"""Smoke test of ``python -m benchmarks.epoch_cost`` at small sizes: it runs and reports every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_small_run_reports_every_server_and_variant() -> None:
    pytest.importorskip("psutil")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    cmd = [sys.executable, "-m", "benchmarks.epoch_cost", "--requests", "80", "--epochs", "60"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    assert set(results["http"]) == {"trainhub", "bare", "floor"}
    for figures in results["http"].values():
        assert figures["p50_ms"] > 0 and figures["server_cpu_ms"] >= 0 and figures["client_cpu_ms"] > 0
    assert set(results["write"]) == {"full", "no_rollups", "rollups_4_levels"}
    assert set(results["replaced"]) == {"per_point_probe", "per_series_shortcut"}
    assert all(v["p50_ms"] > 0 for v in (*results["write"].values(), *results["replaced"].values()))
