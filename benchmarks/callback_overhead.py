"""Time spent on the training thread per callback call, with the hub up, down and slow.

    python -m benchmarks.callback_overhead [--epochs 1000] [--json out.json]

For each hub state it drives the real ``trainhub.callbacks.hub`` callbacks with a real
``HubSession`` (durable spool in a temp dir) through N epochs of a YOLO-like trainer (15
metrics) and reports p50/p99/max of ``on_fit_epoch_end`` and ``on_model_save`` (each call is
timed on the calling thread with ``perf_counter_ns``). Hub states:

* up:   a real ``trainhub serve`` on 127.0.0.1 (port 0, fresh data dir);
* down: a port with nothing listening (connection refused);
* slow: a loopback server that takes 5 s to answer each request.

The rate limits are set to 0 so every epoch releases its metrics and uploads a checkpoint: the
worst case for the training thread. Between epochs the loop "trains" for ``--epoch-seconds``
(default 0.02 s, spent in ``time.sleep``, which releases the GIL as torch kernels do); with
``--epoch-seconds 0`` the callbacks run back to back and the worker thread, busy sending the
previous epochs, competes with the training thread for the GIL and the two cores at every call
(a stress case: real epochs take seconds). Nothing here installs anything.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ADMIN_KEY = "ul_" + "b" * 40
LOSSES = ("box_loss", "cls_loss", "dfl_loss")


@contextmanager
def real_hub(tmp: Path) -> Iterator[str]:
    """A real ``trainhub serve`` subprocess; yields its URL."""
    env = {**os.environ, "TRAINHUB_ADMIN_KEY": ADMIN_KEY}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainhub",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(tmp / "hub"),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = None
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "listening on" in line:
            url = line.rsplit(" ", 1)[-1].strip()
    if url is None:
        proc.kill()
        raise RuntimeError("trainhub serve did not start")
    # Keep draining its output so the pipe never fills up.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def down_hub() -> Iterator[str]:
    """A loopback port with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


@contextmanager
def slow_hub(delay: float = 5.0) -> Iterator[str]:
    """A loopback server that answers every request after ``delay`` seconds."""
    stop = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
            stop.wait(delay)
            body = b'{"agent_id": "slow", "status": "training", "stop_requested": false}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()


def fake_trainer(session: Any, last: Path, best: Path) -> SimpleNamespace:
    """A trainer with the attributes the callbacks read: 15 YOLO-like metrics per epoch."""

    def label_loss_items(tloss: Any, prefix: str = "train") -> dict[str, float]:
        return {f"{prefix}/{name}": 1.0 / (1 + i) for i, name in enumerate(LOSSES)}

    return SimpleNamespace(
        hub_session=session,
        epoch=0,
        epochs=0,
        tloss=None,
        label_loss_items=label_loss_items,
        metrics={
            "metrics/precision(B)": 0.5,
            "metrics/recall(B)": 0.4,
            "metrics/mAP50(B)": 0.3,
            "metrics/mAP50-95(B)": 0.2,
            "val/box_loss": 1.1,
            "val/cls_loss": 1.2,
            "val/dfl_loss": 1.3,
        },
        lr={"lr/pg0": 0.01, "lr/pg1": 0.01, "lr/pg2": 0.01},
        fitness=0.2,
        best_fitness=0.2,
        last=last,
        best=best,
        args=SimpleNamespace(task="detect"),
    )


def percentiles(ns: list[int]) -> dict[str, float]:
    ms = sorted(x / 1e6 for x in ns)
    return {
        "p50_ms": round(statistics.median(ms), 4),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 4),
        "max_ms": round(ms[-1], 4),
    }


def run_state(state: str, url: str, epochs: int, tmp: Path, epoch_seconds: float) -> dict[str, Any]:
    from trainhub import HubSession
    from trainhub.callbacks import hub as cb

    last, best = tmp / "last.pt", tmp / "best.pt"
    last.write_bytes(os.urandom(256 * 1024))
    best.write_bytes(os.urandom(256 * 1024))
    session = HubSession(
        url,
        ADMIN_KEY,
        project="bench",
        name=f"callbacks-{state}",
        rate_limits={"metrics": 0.0, "ckpt": 0.0},
        spool_dir=tmp / f"spool-{state}",
    )
    trainer = fake_trainer(session, last, best)
    cb.on_pretrain_routine_end(trainer)
    fit, save = [], []
    for epoch in range(1, epochs + 1):  # epoch 0 would import ultralytics for the model info
        if epoch_seconds:
            time.sleep(epoch_seconds)  # the epoch's training work
        trainer.epoch = epoch
        cb.on_train_epoch_end(trainer)
        t0 = time.perf_counter_ns()
        cb.on_fit_epoch_end(trainer)
        t1 = time.perf_counter_ns()
        cb.on_model_save(trainer)
        t2 = time.perf_counter_ns()
        fit.append(t1 - t0)
        save.append(t2 - t1)
    pending = session.spool.pending() if hasattr(session.spool, "pending") else None
    session.alive = False
    session.close(timeout=0 if state != "up" else 30)
    return {
        "state": state,
        "epochs": epochs,
        "epoch_seconds": epoch_seconds,
        "on_fit_epoch_end": percentiles(fit),
        "on_model_save": percentiles(save),
        "pending_at_end": pending,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--epoch-seconds", type=float, default=0.02, help="simulated training time per epoch")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("TRAINHUB_EVENTS", "0")
    os.environ.setdefault("TRAINHUB_EXIT_TIMEOUT", "0")
    results = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for state, ctx in (("up", real_hub(tmp)), ("down", down_hub()), ("slow", slow_hub())):
            with ctx as url:
                results.append(run_state(state, url, args.epochs, tmp, args.epoch_seconds))
    print(f"epochs={args.epochs} epoch_seconds={args.epoch_seconds}")
    print(f"{'hub':<6}{'callback':<18}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for r in results:
        for name in ("on_fit_epoch_end", "on_model_save"):
            p = r[name]
            print(f"{r['state']:<6}{name:<18}{p['p50_ms']:>10.3f}{p['p99_ms']:>10.3f}{p['max_ms']:>10.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
