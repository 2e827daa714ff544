"""``trainhub migrate-data``: a populated SQLite + files hub moved to PostgreSQL + S3, nothing lost.

The same API reads on the old and the new hub must give the same answers: every model (status,
config, final metrics), every metric point, every checkpoint slot and its exact bytes, every key,
project and event summary. Needs PostgreSQL and moto (skipped locally without, a failure in CI).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from backends import SERVICES, Instance, new_instance
from hubserver import ADMIN_KEY, HubServer

API = "/api/v1"


def _populate(c: httpx.Client) -> None:
    for i in range(4):
        mid = secrets.token_hex(10)
        body = {
            "name": f"run-{i}",
            "project": f"proj-{i % 2}",
            "epochs": 30,
            "task": "detect",
            "config": {"lr": 0.01},
        }
        assert c.put(f"{API}/models/{mid}", json=body).status_code == 201
        epochs = [
            {"epoch": e, "metrics": {"train/loss": 1 / (e + 1), "metrics/mAP50(B)": e / 30, "lr/pg0": None}}
            for e in range(30)
        ]
        assert c.post(f"{API}/models/{mid}/metrics", json={"epochs": epochs}).status_code == 200
        for kind, size in (("last", 300_000 + i), ("final", 9 * 1024 * 1024 if i == 0 else 1000 + i)):
            data = os.urandom(size)
            r = c.put(
                f"{API}/models/{mid}/checkpoints/{kind}",
                params={"epoch": 29, "map": 0.5, "is_best": "true"},
                content=data,
                headers={"x-trainhub-sha256": hashlib.sha256(data).hexdigest()},
            )
            assert r.status_code == 201, r.text
    assert c.post(f"{API}/keys", json={"name": "laptop"}).status_code == 201
    r = c.post(f"{API}/events", json={"events": [{"kind": "train_start", "install_id": "abc"}]})
    assert r.status_code == 202, r.text


def _snapshot(c: httpx.Client) -> dict[str, Any]:
    models = sorted(c.get(f"{API}/models", params={"limit": 1000}).json(), key=lambda m: m["id"])
    snap: dict[str, Any] = {"models": models, "projects": c.get(f"{API}/projects").json()}
    snap["keys"] = c.get(f"{API}/keys").json()
    snap["events"] = c.get(f"{API}/events/summary").json()
    for m in models:
        mid = m["id"]
        snap[f"{mid}/metrics"] = c.get(f"{API}/models/{mid}/metrics").json()
        slots = c.get(f"{API}/models/{mid}/checkpoints").json()
        snap[f"{mid}/checkpoints"] = slots
        for ck in slots:
            body = c.get(f"{API}/models/{mid}/checkpoints/{ck['kind']}/download").content
            snap[f"{mid}/{ck['kind']}/bytes"] = (len(body), hashlib.sha256(body).hexdigest())
    return snap


def test_migrate_data_moves_a_sqlite_hub_to_postgres_and_s3(tmp_path: Path) -> None:
    SERVICES.require()
    source = HubServer(tmp_path / "old", ADMIN_KEY, {"TRAINHUB_PUBLIC_URL": "http://hub.test"}).start()
    try:
        with httpx.Client(base_url=source.url, headers=source.headers(), timeout=60) as c:
            _populate(c)
            before = _snapshot(c)
    finally:
        source.stop()

    target: Instance = new_instance("postgres", tmp_path / "new")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINHUB_", "AWS_"))}
        env.update({k: v for k, v in target.env.items() if k.startswith("AWS_")})
        cmd = [sys.executable, "-m", "trainhub", "migrate-data"]
        cmd += ["--from", f"sqlite:///{tmp_path / 'old' / 'trainhub.db'}", "--to", target.database_url]
        cmd += [
            "--from-storage",
            f"file://{tmp_path / 'old' / 'objects'}",
            "--to-storage",
            target.storage_url,
        ]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "migrated" in done.stdout and "Traceback" not in done.stderr

        # Again: the target is no longer empty, so it refuses (and changes nothing).
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert again.returncode == 2 and "not empty" in again.stderr

        # admin_key=None: the key must come from the copied api_keys table, not be registered anew.
        new = HubServer(target.data_dir, None, {"TRAINHUB_PUBLIC_URL": "http://hub.test"}, target).start()
        try:
            with httpx.Client(
                base_url=new.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
            ) as c:
                after = _snapshot(c)
                # Ids keep counting after the copied ones (PostgreSQL sequences were moved on).
                r = c.post(f"{API}/projects", json={"name": "after-migration"})
                assert r.status_code == 201, r.text
        finally:
            new.stop()
        assert set(before) == set(after)
        for key in before:
            if key == "keys":  # last_used_at moves when the key is used on the new hub
                strip = [{k: v for k, v in row.items() if k != "last_used_at"} for row in before[key]]
                assert strip == [{k: v for k, v in row.items() if k != "last_used_at"} for row in after[key]]
            else:
                assert before[key] == after[key], key
        assert len(target.blobs()) == 8
    finally:
        target.drop()
