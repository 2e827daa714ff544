"""Smoke test of the side-by-side benchmark harness (``python -m benchmarks.compare``).

It runs trainhub alone (``--no-peers``: MLflow, wandb and PostgreSQL are measured only when the
benchmark is run by hand) at ``--quick`` sizes, and checks the shape of the table and the JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_quick_trainhub_only_run_prints_the_table_and_writes_the_json(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    out = tmp_path / "compare.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.compare",
            "--quick",
            "--no-peers",
            "--only",
            "ingest,epoch,read,footprint,import",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert "errors" not in results, results.get("errors")
    metrics = {row["metric"]: row for row in results["rows"]}
    for metric in (
        "ingest, 1 client",
        "ingest, 4 clients",
        "one epoch (15 metrics) p50",
        "read series (full)",
        "read series (downsampled)",
        "import time (median)",
        "server ready (spawn to first 200)",
        "idle server RSS (all processes)",
    ):
        assert metrics[metric]["values"]["trainhub"] > 0, metric
    assert results["trainhub"]["read"]["full"]["returned"] == results["sizes"]["read_points"]
    assert results["trainhub"]["epoch"]["nagle_stall"] is False  # the server sets TCP_NODELAY
    # The do-nothing floor under the same uvicorn answers, and faster than the hub storing epochs.
    floor = results["floor"]["epoch"]
    assert 0 < floor["p50_ms"] < results["trainhub"]["epoch"]["p50_ms"]
    assert metrics["one epoch (15 metrics) p50"]["values"]["floor"] == floor["p50_ms"]
    table = proc.stdout.splitlines()
    assert table[0].startswith("| figure") and "trainhub" in table[0]
    assert any(line.startswith("| ingest, 1 client") for line in table)


def test_ratios_are_trainhub_over_peer_and_goals_are_checked() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.compare import render, table_rows

    results = {
        "trainhub": {
            "ingest": {"1": {"points_per_s": 100_000}, "4": {"points_per_s": 150_000}},
            "epoch": {"p50_ms": 1.0, "p99_ms": 2.0},
        },
        "mlflow": {
            "ingest": {"1": {"points_per_s": 9_000}, "4": {"points_per_s": 9_000}},
            "epoch": {"p50_ms": 8.0, "p99_ms": 15.0},
        },
        "skipped": {"wandb": "not installed"},
    }
    rows = {r["metric"]: r for r in table_rows(results)}
    ingest = rows["ingest, 4 clients"]
    assert ingest["ratio"]["mlflow"] == pytest.approx(150_000 / 9_000, rel=1e-3)
    assert ingest["met"] is True
    assert rows["one epoch (15 metrics) p50"]["met"] is False  # 1.0 ms is not 10x below 8.0 ms
    assert "import time (median)" not in rows  # no figures, no row
    text = render({**results, "rows": list(rows.values())})
    assert "skipped wandb: not installed" in text
