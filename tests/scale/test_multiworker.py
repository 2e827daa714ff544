"""Scale-out: nginx round-robin in front of 3 trainhub workers on one PostgreSQL + S3 hub.

20 simulated training runs (a real :class:`trainhub.HubSession` each: 50 epochs of metrics and a
checkpoint per epoch, then a final checkpoint) go through nginx while one worker is killed
(SIGKILL, mid-request) and restarted on its port. Afterwards every epoch and every checkpoint is
stored exactly once: each series has exactly one point per epoch with the last value sent, each
checkpoint slot holds the newest checkpoint with its exact bytes (sha256), every blob is in the
bucket once under its sha256, and nothing half-written is visible.

Needs PostgreSQL, moto and nginx (``scripts/test.sh`` sets them up): skipped locally without them,
a failure in CI.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backends import SERVICES, Instance, new_instance, pg_connect, unavailable
from hubserver import ADMIN_KEY, HubServer

pytestmark = pytest.mark.scale

CLIENTS = 20
EPOCHS = 50
WORKERS = 3
METRICS = ("train/box_loss", "train/cls_loss", "metrics/mAP50(B)", "metrics/mAP50-95(B)", "lr/pg0")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nginx_conf(root: Path, port: int, upstreams: list[int]) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in upstreams)
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream trainhub {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://trainhub;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 300s;
            proxy_next_upstream error timeout http_502;
        }}
    }}
}}
"""


class Nginx:
    """nginx (Debian's binary) with its own config in a temp dir, in the foreground."""

    def __init__(self, root: Path, upstreams: list[int]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = root / "nginx.conf"
        conf.write_text(_nginx_conf(root, self.port, upstreams))
        self._proc = subprocess.Popen(
            [NGINX, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    log = (root / "error.log").read_text() if (root / "error.log").exists() else ""
                    raise RuntimeError(f"nginx did not start: {log}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGTERM), then reap."""
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@pytest.fixture
def cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Nginx, list[HubServer], Instance]]:
    """3 workers (fixed ports) sharing one PostgreSQL schema + bucket, nginx in front."""
    for name in list(os.environ):
        if name.startswith("TRAINHUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TRAINHUB_EVENTS", "0")  # no usage events from tests
    if not Path(NGINX).exists():
        unavailable("nginx not installed (apt-get install nginx)")
    SERVICES.require()
    instance = new_instance("postgres", tmp_path / "hub")
    ports = [_free_port() for _ in range(WORKERS)]
    nginx = Nginx(tmp_path / "nginx", ports)
    # Every request carries the same admin key: lift the per-process limit for this load.
    env = {"TRAINHUB_PUBLIC_URL": nginx.url, "TRAINHUB_RATE_LIMIT_RPS": "0"}
    workers = [HubServer(instance.data_dir, ADMIN_KEY, env, instance) for _ in ports]
    try:
        for w, port in zip(workers, ports, strict=True):
            w.start(port=port)
        yield nginx, workers, instance
    finally:
        nginx.stop()
        for w in workers:
            w.stop()
        instance.drop()


def _train(url: str, spool: Path, ckpt_dir: Path, index: int, record: dict[str, Any]) -> None:
    from trainhub.client.session import HubSession

    ckpt_dir.mkdir(parents=True)
    session = HubSession(
        url=url,
        api_key=ADMIN_KEY,
        name=f"run-{index}",
        epochs=EPOCHS,
        task="detect",
        rate_limits={"metrics": 0.0, "ckpt": 0.0, "heartbeat": 5.0},
        spool_dir=spool,
    )
    record["model_id"] = session.model_id
    sent: dict[int, dict[str, float]] = {}
    ckpts: dict[int, str] = {}
    for epoch in range(EPOCHS):
        metrics = {name: round(1.0 / (epoch + 1) + i + index / 1000, 6) for i, name in enumerate(METRICS)}
        session.queue_metrics(epoch, metrics)
        session.upload_metrics()
        sent[epoch] = metrics
        # A distinct file per epoch: the worker reads it later, after training moved on.
        path = ckpt_dir / f"epoch{epoch}.pt"
        path.write_bytes(os.urandom(64 * 1024 + index) + epoch.to_bytes(2, "big"))
        ckpts[epoch] = hashlib.sha256(path.read_bytes()).hexdigest()
        session.upload_model(epoch, path, is_best=epoch % 10 == 0, map=epoch / 100)
        time.sleep(0.02)  # an "epoch"
    final = ckpt_dir / "final.pt"
    # One client's final checkpoint spans two S3 parts: the multipart path goes through nginx too.
    final.write_bytes(os.urandom((9 * 1024 * 1024) if index == 0 else (128 * 1024)))
    record["final_sha"] = hashlib.sha256(final.read_bytes()).hexdigest()
    session.upload_model(EPOCHS - 1, final, map=0.5, final=True)
    record["flushed"] = session.flush(timeout=180)
    session.close(timeout=30)
    record["sent"] = sent
    record["ckpts"] = ckpts


def test_twenty_runs_through_nginx_survive_a_killed_worker_exactly_once(
    cluster: tuple[Nginx, list[HubServer], Instance], tmp_path: Path
) -> None:
    nginx, workers, instance = cluster
    records: list[dict[str, Any]] = [{} for _ in range(CLIENTS)]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            _train(nginx.url, tmp_path / f"spool{i}", tmp_path / f"ckpt{i}", i, records[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    # Mid-run: kill worker 1 (SIGKILL: requests in flight are cut), then restart it on its port.
    time.sleep(2.0)
    victim = workers[1]
    port = victim.port
    victim.kill()
    time.sleep(1.0)
    victim.start(port=port)
    for t in threads:
        t.join(600)
    elapsed = time.monotonic() - started
    assert not errors, errors
    assert all(r.get("flushed") for r in records), "a session could not deliver everything"
    print(f"\n{CLIENTS} runs x {EPOCHS} epochs through nginx + {WORKERS} workers: {elapsed:.1f} s")

    with httpx.Client(base_url=nginx.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as c:
        for r in records:
            mid = r["model_id"]
            model = c.get(f"/api/v1/models/{mid}").json()
            assert model["status"] == "done", model
            slots = {ck["kind"]: ck for ck in c.get(f"/api/v1/models/{mid}/checkpoints").json()}
            assert slots["last"]["epoch"] == EPOCHS - 1 and slots["last"]["sha256"] == r["ckpts"][EPOCHS - 1]
            assert slots["final"]["sha256"] == r["final_sha"]
            got = c.get(f"/api/v1/models/{mid}/checkpoints/final/download")
            assert hashlib.sha256(got.content).hexdigest() == r["final_sha"]

    with pg_connect() as conn:
        schema = instance.schema
        dupes = conn.execute(
            f'SELECT model_id, name, step, count(*) FROM "{schema}".metric_points '
            "GROUP BY model_id, name, step HAVING count(*) > 1"
        ).fetchall()
        assert dupes == []
        for r in records:
            rows = conn.execute(
                f'SELECT step, name, value FROM "{schema}".metric_points WHERE model_id = %s',
                (r["model_id"],),
            ).fetchall()
            got = {(int(step), name): value for step, name, value in rows}
            want = {(e, n): v for e, m in r["sent"].items() for n, v in m.items()}
            assert got == want  # every epoch once, with the value sent
        referenced = {
            row[0] for row in conn.execute(f'SELECT DISTINCT sha256 FROM "{schema}".checkpoints').fetchall()
        }
    blobs = instance.blobs()
    assert len(blobs) == len(set(blobs))  # content-addressed: one object per content
    assert referenced <= set(blobs)
    for r in records:  # every checkpoint that reached the hub is its exact bytes, stored once
        assert r["final_sha"] in blobs and r["ckpts"][EPOCHS - 1] in blobs
