"""Key scopes: a read-only key reads everything its hub shows and writes nothing, on every API."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from server_helpers import API, assert_error, client, new_model

if TYPE_CHECKING:
    from conftest import HubServer

Setup = dict[str, Any]


@pytest.fixture(scope="module")
def setup(hub_server_module: HubServer) -> Iterator[dict[str, Any]]:
    with client(hub_server_module) as admin:
        model = new_model(admin, name="watched")
        admin.post(
            f"{API}/models/{model['id']}/metrics", json={"epochs": [{"epoch": 0, "metrics": {"a": 1.0}}]}
        )
        r = admin.post(f"{API}/keys", json={"name": "dashboard", "read_only": True})
        assert r.status_code == 201, r.text
        assert r.json()["read_only"] is True and r.json()["is_admin"] is False
        yield {"model": model["id"], "key": r.json()["key"], "admin": admin}


def _state(admin: httpx.Client, model_id: str) -> tuple[Any, ...]:
    m = admin.get(f"{API}/models/{model_id}").json()
    return m["name"], m["status"], m["stop_requested"], admin.get(f"{API}/models/{model_id}/metrics").json()


def test_a_read_only_key_reads_the_native_api(hub_server_module: HubServer, setup: Setup) -> None:
    with client(hub_server_module, setup["key"]) as c:
        assert c.get(f"{API}/models").status_code == 200
        assert c.get(f"{API}/models/{setup['model']}/metrics").json()[0]["metrics"] == {"a": 1.0}
        assert c.get(f"{API}/models/{setup['model']}/checkpoints").status_code == 200


def _writes(model_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    m = f"{API}/models/{model_id}"
    return [
        ("POST", f"{API}/projects", {"json": {"name": "p"}}),
        ("POST", f"{API}/models", {"json": {"name": "new"}}),
        ("PUT", m, {"json": {"name": "renamed"}}),
        ("POST", f"{m}/metrics", {"json": {"epochs": [{"epoch": 1, "metrics": {"a": 2.0}}]}}),
        ("POST", f"{m}/status", {"json": {"status": "failed"}}),
        ("POST", f"{m}/heartbeat", {"json": {"agent": "x"}}),
        ("POST", f"{m}/stop", {}),
        ("PUT", f"{m}/checkpoints/last", {"content": b"weights"}),
        ("POST", f"{API}/datasets", {"json": {"name": "d"}}),
        ("POST", f"{API}/events", {"json": {"events": []}}),
    ]


def test_a_read_only_key_cannot_write_the_native_api(hub_server_module: HubServer, setup: Setup) -> None:
    before = _state(setup["admin"], setup["model"])
    with client(hub_server_module, setup["key"]) as c:
        for method, path, kwargs in _writes(setup["model"]):
            assert_error(c.request(method, path, **kwargs), 403, "forbidden")
    assert _state(setup["admin"], setup["model"]) == before


def test_a_read_only_key_cannot_write_the_compat_apis(hub_server_module: HubServer, setup: Setup) -> None:
    before = _state(setup["admin"], setup["model"])
    with httpx.Client(base_url=hub_server_module.url, headers={"x-api-key": setup["key"]}, timeout=30) as c:
        assert c.get("/v1/models").status_code == 200
        assert c.get("/api/account/summary").status_code == 200
        assert c.post("/v1/models", json={"config": {}}).status_code == 403
        assert c.post(f"/v1/models/{setup['model']}", json={"metrics": {"1": '{"a": 5}'}}).status_code == 403
        assert c.post(f"/v1/agent/heartbeat/models/{setup['model']}", json={}).status_code == 403
        assert c.post("/api/webhooks/training/metrics", json={}).status_code == 403
    assert _state(setup["admin"], setup["model"]) == before


def test_a_read_only_web_session_cannot_stop_a_run(hub_server_module: HubServer, setup: Setup) -> None:
    with httpx.Client(base_url=hub_server_module.url) as browser:
        assert browser.post("/login", data={"api_key": setup["key"], "next": "/"}).status_code == 303
        page = browser.get(f"/models/{setup['model']}")
        assert page.status_code == 200
        token = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page.text)
        assert token is not None
        r = browser.post(f"{API}/models/{setup['model']}/stop", headers={"x-trainhub-csrf": token.group(1)})
        assert_error(r, 403, "forbidden")
    assert _state(setup["admin"], setup["model"])[2] is False


def test_a_key_cannot_be_admin_and_read_only(setup: dict[str, Any]) -> None:
    r = setup["admin"].post(f"{API}/keys", json={"name": "x", "is_admin": True, "read_only": True})
    assert_error(r, 422, "validation_error")


def test_keys_cli_creates_and_lists_a_read_only_key(hub_server_module: HubServer) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "trainhub", *args, "--data-dir", str(hub_server_module.data_dir)]
        return subprocess.run(
            cmd, capture_output=True, text=True, env=hub_server_module.cli_env(), timeout=60
        )

    created = cli("keys", "create", "--name", "viewer", "--read-only")
    assert created.returncode == 0 and "read-only key" in created.stdout, created.stderr
    key = re.search(r"ul_[0-9a-f]{40}", created.stdout)
    assert key is not None
    row = next(line for line in cli("keys", "list").stdout.splitlines() if line.endswith("viewer"))
    assert " read " in row
    with client(hub_server_module, key.group()) as c:
        assert c.get(f"{API}/models").status_code == 200
        assert_error(c.post(f"{API}/models", json={"name": "x"}), 403, "forbidden")
    assert cli("keys", "create", "--admin", "--read-only").returncode != 0
