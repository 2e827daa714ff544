"""API keys: header forms, 401/403, revocation, the keys CLI, the first-start admin key."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest
from server_helpers import API, assert_error, client

if TYPE_CHECKING:
    from conftest import HubServer

KEY_RE = re.compile(r"ul_[0-9a-f]{40}")


def _cli(*args: str, server: HubServer) -> subprocess.CompletedProcess[str]:
    env = server.cli_env()  # the hub's backend (its TRAINHUB_DATABASE_URL, if not SQLite)
    return subprocess.run(
        [sys.executable, "-m", "trainhub", *args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_bearer_and_x_api_key_both_work(hub_server: HubServer) -> None:
    assert httpx.get(f"{hub_server.url}{API}/models", headers=hub_server.headers()).status_code == 200
    assert (
        httpx.get(f"{hub_server.url}{API}/models", headers={"x-api-key": hub_server.api_key}).status_code
        == 200
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer ul_" + "0" * 40},
        {"x-api-key": "nonsense"},
        {"Authorization": "Basic abc"},
    ],
)
def test_missing_or_unknown_key_is_401(hub_server_module: HubServer, headers: dict[str, str]) -> None:
    assert_error(httpx.get(f"{hub_server_module.url}{API}/models", headers=headers), 401, "unauthorized")


def test_anonymous_bad_json_is_still_401(hub_server_module: HubServer) -> None:
    r = httpx.post(
        f"{hub_server_module.url}{API}/models", content=b"{", headers={"content-type": "application/json"}
    )
    assert_error(r, 401, "unauthorized")


def test_health_needs_no_key(hub_server_module: HubServer) -> None:
    assert httpx.get(f"{hub_server_module.url}{API}/health").json()["status"] == "ok"


def test_key_routes_create_list_revoke(hub_server: HubServer) -> None:
    with client(hub_server) as admin:
        r = admin.post(f"{API}/keys", json={"name": "ci"})
        assert r.status_code == 201
        key, key_id = r.json()["key"], r.json()["id"]
        assert KEY_RE.fullmatch(key) and r.json()["is_admin"] is False
        with client(hub_server, key) as user:
            assert user.get(f"{API}/models").status_code == 200
            assert_error(user.get(f"{API}/keys"), 403, "forbidden")
            assert_error(user.post(f"{API}/keys", json={"name": "x"}), 403, "forbidden")
            assert_error(user.delete(f"{API}/keys/{key_id}"), 403, "forbidden")
            listed = {k["id"]: k for k in admin.get(f"{API}/keys").json()}
            assert listed[key_id]["last_used_at"] is not None
            assert "key_hash" not in listed[key_id] and "key" not in listed[key_id]
            assert admin.delete(f"{API}/keys/{key_id}").json()["revoked_at"] is not None
            assert_error(user.get(f"{API}/models"), 401, "unauthorized")
        assert_error(admin.delete(f"{API}/keys/nope"), 404, "key_not_found")


def test_keys_cli_create_list_revoke(hub_server: HubServer) -> None:
    created = _cli("keys", "create", "--name", "laptop", server=hub_server)
    assert created.returncode == 0, created.stderr
    key = KEY_RE.search(created.stdout)
    assert key is not None
    key_id = re.search(r"key ([0-9a-f]+) ", created.stdout)
    assert key_id is not None
    with client(hub_server, key.group()) as c:
        assert c.get(f"{API}/models").status_code == 200
        listed = _cli("keys", "list", server=hub_server)
        assert listed.returncode == 0 and "laptop" in listed.stdout and key.group() not in listed.stdout
        revoked = _cli("keys", "revoke", key_id.group(1), server=hub_server)
        assert revoked.returncode == 0, revoked.stderr
        assert_error(c.get(f"{API}/models"), 401, "unauthorized")  # the running server sees it at once
    assert _cli("keys", "revoke", "nope", server=hub_server).returncode != 0


def test_first_start_prints_a_generated_admin_key_once(hub_server_factory: Callable[..., HubServer]) -> None:
    server = hub_server_factory(admin_key=None)
    printed = [line for line in server.output if "admin API key (shown once" in line]
    assert len(printed) == 1
    key = KEY_RE.search(printed[0])
    assert key is not None
    assert httpx.get(f"{server.url}{API}/models", headers={"x-api-key": key.group()}).status_code == 200
    assert key.group() not in server.instance.database_text()
    server.stop()
    server.output.clear()
    server.start()
    assert not any(KEY_RE.search(line) for line in server.output)
    assert httpx.get(f"{server.url}{API}/keys", headers={"x-api-key": key.group()}).status_code == 200
