"""Client-side measurements of :mod:`benchmarks.compare`, each run in a fresh subprocess.

    python -m benchmarks.clientside thread-cost PEER URL EPOCHS EPOCH_SECONDS TMP [KEY]
    python -m benchmarks.clientside upload PEER URL FILE [KEY] [MODEL_ID]

A fresh process per peer keeps their imports, threads and memory apart. The result is printed as
one JSON line (the last line of stdout).

``thread-cost`` times, on the calling thread (``perf_counter_ns``), what a training loop calls once
per epoch with 15 YOLO-like metrics:

* ``trainhub``: ``HubSession.queue_metrics`` + ``upload_metrics`` (durable spool; the worker
  thread sends to the hub); rate limit 0, so every epoch is released at once (the worst case);
* ``mlflow-sync`` / ``mlflow-async``: ``mlflow.log_metrics(..., synchronous=True/False)``;
* ``wandb``: ``run.log`` of an offline run (``WANDB_MODE=offline``: nothing leaves the machine).

Between calls the loop sleeps ``EPOCH_SECONDS`` (the epoch's training, releasing the GIL as torch
kernels do). ``upload`` sends one file and reports its wall time and the client's RSS growth.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

#: A YOLO detection epoch's 15 keys, spelled as MLflow accepts them (it refuses "(B)").
METRICS = (
    "train/box_loss",
    "train/cls_loss",
    "train/dfl_loss",
    "metrics/precision_B",
    "metrics/recall_B",
    "metrics/mAP50_B",
    "metrics/mAP50-95_B",
    "val/box_loss",
    "val/cls_loss",
    "val/dfl_loss",
    "lr/pg0",
    "lr/pg1",
    "lr/pg2",
    "fitness",
    "epoch_time",
)


def epoch_metrics(epoch: int) -> dict[str, float]:
    return {name: 1.0 / (1 + epoch + i) for i, name in enumerate(METRICS)}


def summary(ns: list[int]) -> dict[str, float]:
    ms = sorted(x / 1e6 for x in ns)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 4),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 4),
        "max_ms": round(ms[-1], 4),
        "mean_ms": round(statistics.fmean(ms), 4),
    }


def thread_cost(
    peer: str, url: str, epochs: int, epoch_seconds: float, tmp: Path, key: str
) -> dict[str, Any]:
    times: list[int] = []
    extra: dict[str, Any] = {}
    if peer == "trainhub":
        from trainhub import HubSession

        session = HubSession(
            url,
            key,
            project="bench",
            name="thread-cost",
            rate_limits={"metrics": 0.0},
            spool_dir=tmp / "spool",
        )
        for epoch in range(1, epochs + 1):
            time.sleep(epoch_seconds)
            t0 = time.perf_counter_ns()
            session.queue_metrics(epoch, epoch_metrics(epoch))
            session.upload_metrics()
            times.append(time.perf_counter_ns() - t0)
        t0 = time.perf_counter_ns()
        extra["flushed"] = session.flush(timeout=60)
        extra["flush_s"] = round((time.perf_counter_ns() - t0) / 1e9, 3)
        extra["model_id"] = session.model_id
        session.close(timeout=10)
    elif peer in ("mlflow-sync", "mlflow-async"):
        import mlflow

        mlflow.set_tracking_uri(url)
        mlflow.set_experiment("bench-thread-cost")
        synchronous = peer == "mlflow-sync"
        with mlflow.start_run():
            for epoch in range(1, epochs + 1):
                time.sleep(epoch_seconds)
                t0 = time.perf_counter_ns()
                mlflow.log_metrics(epoch_metrics(epoch), step=epoch, synchronous=synchronous)
                times.append(time.perf_counter_ns() - t0)
            t0 = time.perf_counter_ns()
            if not synchronous:
                mlflow.flush_async_logging()
            extra["flush_s"] = round((time.perf_counter_ns() - t0) / 1e9, 3)
    elif peer == "wandb":
        if os.environ.get("WANDB_MODE") != "offline":
            raise SystemExit("wandb runs offline only: set WANDB_MODE=offline")
        import wandb

        run = wandb.init(
            mode="offline",
            project="bench",
            dir=str(tmp),
            settings=wandb.Settings(
                mode="offline", console="off", save_code=False, disable_git=True, x_disable_stats=True
            ),
        )
        for epoch in range(1, epochs + 1):
            time.sleep(epoch_seconds)
            t0 = time.perf_counter_ns()
            run.log(epoch_metrics(epoch), step=epoch)
            times.append(time.perf_counter_ns() - t0)
        t0 = time.perf_counter_ns()
        run.finish()
        extra["flush_s"] = round((time.perf_counter_ns() - t0) / 1e9, 3)
    else:
        raise SystemExit(f"unknown peer {peer!r}")
    return {"peer": peer, "epochs": epochs, "epoch_seconds": epoch_seconds, **summary(times), **extra}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _rss() -> int:
    """RSS now, after resetting the peak (Linux: ``clear_refs`` 5 resets ``VmHWM``), in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def _peak_rss() -> int:
    """Peak RSS since the last :func:`_rss`, in bytes."""
    return _status_kib("VmHWM") * 1024


def upload(peer: str, url: str, file: Path, key: str, model_id: str) -> dict[str, Any]:
    size = file.stat().st_size
    if peer == "trainhub":
        from trainhub.client.transport import Transport, file_sha256
        from trainhub.protocol import checkpoint_path

        transport = Transport(url, key, timeout=600)
        before = _rss()
        t0 = time.perf_counter()
        sha, _ = file_sha256(file)
        t_hash = time.perf_counter() - t0
        result = transport.upload(
            checkpoint_path(model_id, "last"),
            file,
            sha256=sha,
            size=size,
            params={"epoch": 1},
            progress=False,
        )
        elapsed = time.perf_counter() - t0
        ok = result.ok
        extra: dict[str, Any] = {"hash_s": round(t_hash, 3), "status": result.status}
        transport.close()
    elif peer == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(url)
        mlflow.set_experiment("bench-upload")
        with mlflow.start_run():
            before = _rss()
            t0 = time.perf_counter()
            mlflow.log_artifact(str(file))
            elapsed = time.perf_counter() - t0
        ok, extra = True, {}
    elif peer == "raw-put":
        import httpx

        def chunks() -> Any:
            with file.open("rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        before = _rss()
        t0 = time.perf_counter()
        with httpx.Client(timeout=600) as client:
            r = client.put(f"{url}/{file.name}", content=chunks(), headers={"content-length": str(size)})
        elapsed = time.perf_counter() - t0
        ok, extra = r.status_code == 200, {"status": r.status_code}
    else:
        raise SystemExit(f"unknown peer {peer!r}")
    return {
        "peer": peer,
        "ok": ok,
        "bytes": size,
        "seconds": round(elapsed, 3),
        "mb_per_s": round(size / 1e6 / elapsed, 1),
        "client_rss_growth_mb": round(max(0, _peak_rss() - before) / 1e6, 1),
        **extra,
    }


def main() -> None:
    cmd, peer, url = sys.argv[1:4]
    if cmd == "thread-cost":
        epochs, epoch_seconds, tmp = int(sys.argv[4]), float(sys.argv[5]), Path(sys.argv[6])
        key = sys.argv[7] if len(sys.argv) > 7 else ""
        out = thread_cost(peer, url, epochs, epoch_seconds, tmp, key)
    elif cmd == "upload":
        file = Path(sys.argv[4])
        key = sys.argv[5] if len(sys.argv) > 5 else ""
        model_id = sys.argv[6] if len(sys.argv) > 6 else ""
        out = upload(peer, url, file, key, model_id)
    else:
        raise SystemExit(f"unknown command {cmd!r}")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
