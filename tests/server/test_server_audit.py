"""The audit log records admin actions, logins and key use, and never a secret."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import httpx
from server_helpers import API, assert_error, client

if TYPE_CHECKING:
    from conftest import HubServer


def _entries(c: httpx.Client) -> list[dict[str, Any]]:
    r = c.get(f"{API}/audit", params={"limit": 1000})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()
    return data


def test_key_create_use_login_and_revoke_are_audited(hub_server: HubServer) -> None:
    with client(hub_server) as admin:
        created = admin.post(f"{API}/keys", json={"name": "ci", "read_only": True}).json()
        secret, key_id = created["key"], created["id"]
        with client(hub_server, secret) as c:
            assert c.get(f"{API}/models").status_code == 200
        with httpx.Client(base_url=hub_server.url) as browser:
            browser.post("/login", data={"api_key": secret, "next": "/"})
            browser.post("/login", data={"api_key": "ul_" + "0" * 40, "next": "/"})
        admin.delete(f"{API}/keys/{key_id}")
        entries = _entries(admin)
    admin_id = next(e["target"] for e in entries if e["action"] == "key.create" and e["actor"] == "server")
    seen = [(e["actor"], e["action"], e["target"]) for e in reversed(entries)]
    for expected in [
        (admin_id, "key.create", key_id),
        (key_id, "key.use", None),
        (key_id, "login", key_id),
        ("-", "login.failed", None),
        (admin_id, "key.revoke", key_id),
    ]:
        assert expected in seen, (expected, seen)
    assert seen.index((admin_id, "key.create", key_id)) < seen.index((admin_id, "key.revoke", key_id))
    create = next(e for e in entries if e["action"] == "key.create" and e["target"] == key_id)
    assert create["detail"] == "scope=read user=admin name=ci"
    text = str(entries)
    assert secret not in text and hub_server.api_key not in text and "ul_" not in text


def test_only_admin_keys_read_the_audit_log(hub_server_module: HubServer) -> None:
    with client(hub_server_module) as admin:
        writer = admin.post(f"{API}/keys", json={"name": "w"}).json()["key"]
    with client(hub_server_module, writer) as c:
        assert_error(c.get(f"{API}/audit"), 403, "forbidden")
    assert_error(httpx.get(f"{hub_server_module.url}{API}/audit"), 401, "unauthorized")


def test_audit_cli_prints_cli_actions(hub_server: HubServer) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "trainhub", *args, "--data-dir", str(hub_server.data_dir)]
        env = hub_server.cli_env()
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)

    assert cli("keys", "create", "--name", "from-cli").returncode == 0
    out = cli("audit", "--limit", "5")
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if "from-cli" in line)
    assert " cli " in line and "key.create" in line and "scope=write" in line
