"""Checkpoint uploads that survive: the hub killed mid-upload, the client killed mid-upload.

Both resume from the last acknowledged part: the stored file's sha256 matches, and the bytes sent
twice (counted by the client, as they are handed to the socket) are less than one part.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from trainhub.client.retry import RetryPolicy
from trainhub.client.spool import Spool
from trainhub.client.transport import Transport
from trainhub.client.worker import Worker
from trainhub.protocol import API_PREFIX, DEFAULT_PART_SIZE, upload_path

if TYPE_CHECKING:
    from conftest import HubServer


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _new_model(server: HubServer) -> str:
    model_id = secrets.token_hex(10)
    r = httpx.put(f"{server.url}{API_PREFIX}/models/{model_id}", json={"name": "r"}, headers=server.headers())
    assert r.status_code == 201, r.text
    return model_id


def _stored(server: HubServer, model_id: str) -> dict[str, Any]:
    r = httpx.get(f"{server.url}{API_PREFIX}/models/{model_id}/checkpoints", headers=server.headers())
    return {c["kind"]: c for c in r.json()}


def test_hub_killed_at_half_of_an_upload_then_restarted_resumes(
    hub_server: HubServer, tmp_path: Path
) -> None:
    part = DEFAULT_PART_SIZE
    model_id = _new_model(hub_server)
    weights = tmp_path / "last.pt"
    weights.write_bytes(os.urandom(6 * part + 12345))  # 7 parts
    size, port = weights.stat().st_size, hub_server.port
    spool = Spool.for_model(tmp_path / "spool", model_id)
    spool.put("checkpoint", {"path": str(weights), "kind": "last", "epoch": 3})
    killed: list[int] = []
    upload_ids: list[str] = []

    def wait(seconds: float) -> bool:  # the worker's retry wait: bring the hub back (same port, same data)
        if not hub_server.running:
            hub_server.start(port=port)
        return False

    worker = Worker(
        spool, Transport(hub_server.url, hub_server.api_key), model_id, policy=RetryPolicy(), wait=wait
    )
    worker.uploads.progress = False

    def kill_at_half(n: int) -> None:
        if not killed and worker.uploads.bytes_sent >= size // 2:  # in the middle of part 4
            killed.append(worker.uploads.bytes_sent)
            upload_ids.append(spool.items()[0].payload["upload"]["upload_id"])
            hub_server.kill()  # SIGKILL: no shutdown, the part in flight is cut off

    worker.uploads.on_bytes = kill_at_half
    assert worker.drain()

    assert killed, "the hub was never killed"
    assert _stored(hub_server, model_id)["last"]["sha256"] == _sha(weights)
    resent = worker.uploads.bytes_sent - size
    assert 0 < resent <= part, (resent, part)  # only the part cut off by the kill went twice
    status = httpx.get(
        f"{hub_server.url}{upload_path(model_id, upload_ids[0])}", headers=hub_server.headers()
    )
    assert status.json()["state"] == "complete"
    assert status.json()["bytes_received"] <= size + part  # the server's own count agrees
    assert hub_server.instance.temp_objects() == []


#: A client process that uploads one checkpoint. argv: model_id weights kill_fraction report_file.
#: With kill_fraction > 0 it SIGKILLs itself once that fraction of the file was sent (after writing how
#: many bytes it had sent), else it flushes and prints its upload counters as JSON.
CLIENT = textwrap.dedent(
    """
    import json, os, signal, sys
    from trainhub import HubSession

    model_id, weights, fraction, report = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    s = HubSession(model_id=model_id, name="big")
    uploads = s.worker.uploads
    uploads.progress = False
    size = os.path.getsize(weights)

    def die(n):
        if fraction and uploads.bytes_sent >= fraction * size:
            with open(report, "w") as f:
                json.dump(uploads.stats(), f)
            os.kill(os.getpid(), signal.SIGKILL)

    uploads.on_bytes = die
    if fraction:
        s.upload_model(5, weights)
        s.flush(timeout=120)
        sys.exit(3)  # not reached: killed on the way
    ok = s.flush(timeout=120)
    print(json.dumps({"flushed": ok, **uploads.stats()}))
    """
)


def test_client_process_killed_mid_upload_a_new_process_resumes(
    hub_server: HubServer, tmp_path: Path
) -> None:
    part = DEFAULT_PART_SIZE
    model_id = secrets.token_hex(10)
    weights = tmp_path / "last.pt"
    weights.write_bytes(os.urandom(5 * part + 999))  # 6 parts of the default 8 MiB
    size = weights.stat().st_size
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHUB_")}
    env.update(
        TRAINHUB_URL=hub_server.url,
        TRAINHUB_API_KEY=str(hub_server.api_key),
        TRAINHUB_SPOOL_DIR=str(tmp_path / "spool"),
        TRAINHUB_EVENTS="0",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    report = tmp_path / "first.json"
    script = tmp_path / "client.py"
    script.write_text(CLIENT)

    first = subprocess.run(
        [sys.executable, str(script), model_id, str(weights), "0.5", str(report)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert first.returncode == -signal.SIGKILL, first.stderr
    first_sent = json.loads(report.read_text())["bytes_sent"]
    spool = Spool(Spool.model_path(tmp_path / "spool", model_id), recover=False)
    [item] = [i for i in spool.items() if i.category == "checkpoint"]
    acked = [n for lo, hi in item.payload["upload"]["parts"] for n in range(lo, hi + 1)]
    spool.close()
    assert acked == [1, 2], acked  # killed in part 3 of 6

    second = subprocess.run(
        [sys.executable, str(script), model_id, str(weights), "0", str(report)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout.strip().splitlines()[-1])
    assert out["flushed"]
    assert _stored(hub_server, model_id)["last"]["sha256"] == _sha(weights)
    assert out["bytes_sent"] == size - 2 * part  # parts 3-6 only
    assert first_sent + out["bytes_sent"] - size < part  # re-sent: the cut-off piece of part 3
