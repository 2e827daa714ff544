"""The ``trainhub users``/``teams``/``keys`` commands, run for real on a running hub's database.

Each command is a ``python -m trainhub ...`` subprocess on the hub's storage (its
``--data-dir``, plus the backend's ``TRAINHUB_DATABASE_URL`` when not SQLite); the running server
sees each change at its next request: a disabled user's key answers 401 at once.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
import pytest
from server_helpers import API, assert_error, client

if TYPE_CHECKING:
    from conftest import HubServer

KEY_RE = re.compile(r"ul_[0-9a-f]{40}")


def _cli(server: HubServer, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainhub", *args, "--data-dir", str(server.data_dir)],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=server.cli_env(),
        timeout=60,
        check=False,
    )


def _ok(server: HubServer, *args: str, stdin: str | None = None) -> str:
    done = _cli(server, *args, stdin=stdin)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def _new_key(server: HubServer, *args: str) -> str:
    key = KEY_RE.search(_ok(server, "keys", "create", *args))
    assert key is not None
    return key.group()


def _row(listing: str, first: str) -> list[str]:
    """The columns of the listing's line whose second column (the name) is ``first``."""
    for line in listing.splitlines()[1:]:
        cols = line.split()
        if len(cols) > 1 and cols[1] == first:
            return cols
    raise AssertionError(f"{first!r} not listed in:\n{listing}")


def _web_login(server: HubServer, user: str, password: str) -> int:
    r = httpx.post(f"{server.url}/login", data={"username": user, "password": password, "next": "/"})
    return r.status_code


def _put_model(c: httpx.Client, project: str | None = None) -> httpx.Response:
    body = {"name": "run"} | ({"project": project} if project else {})
    return c.put(f"{API}/models/{secrets.token_hex(10)}", json=body)


def test_users_teams_and_keys_from_the_cli_act_on_the_running_hub(hub_server: HubServer) -> None:
    out = _ok(hub_server, "users", "create", "alice", "--password-stdin", stdin="alice-secret-1\n")
    assert "Created user alice" in out and "with a password" in out
    assert "without a password" in _ok(hub_server, "users", "create", "bob")
    assert "admin user" in _ok(hub_server, "users", "create", "root2", "--admin")
    users = _ok(hub_server, "users", "list")
    assert _row(users, "alice")[2:4] == ["no", "active"]
    assert _row(users, "root2")[2] == "yes"
    assert "alice-secret-1" not in users

    # Teams: made, filled, listed.
    assert "Created team vision" in _ok(hub_server, "teams", "create", "vision")
    _ok(hub_server, "teams", "add", "vision", "alice")
    assert "members: alice, bob" in _ok(hub_server, "teams", "add", "vision", "bob")
    assert _row(_ok(hub_server, "teams", "list"), "vision")[-1] == "alice,bob"
    assert _row(_ok(hub_server, "users", "list"), "bob")[-1] == "vision"

    # Keys of a user, limited to projects; keys list shows user, scope and projects.
    alice_key = _new_key(hub_server, "--user", "alice", "--project", "p1", "--project", "p2", "--name", "lap")
    bob_key = _new_key(hub_server, "--user", "bob", "--name", "bobs")
    listing = _ok(hub_server, "keys", "list")
    lap = next(line.split() for line in listing.splitlines() if line.endswith(" lap"))
    assert lap[2:4] == ["write", "active"] and lap[-3:] == ["alice", "p1,p2", "lap"]
    bobs = next(line.split() for line in listing.splitlines() if line.endswith(" bobs"))
    assert bobs[-3:] == ["bob", "all", "bobs"]
    only_alice = _ok(hub_server, "keys", "list", "--user", "alice")
    assert " lap" in only_alice and " bobs" not in only_alice
    assert alice_key not in listing

    with client(hub_server, alice_key) as alice, client(hub_server, bob_key) as bob:
        r = _put_model(alice, "p1")
        assert r.status_code == 201, r.text
        alice_model = r.json()["id"]
        assert_error(_put_model(alice, "p3"), 403, "forbidden")  # not one of the key's projects
        assert_error(bob.get(f"{API}/models/{alice_model}"), 404, "model_not_found")  # alice's own project

        # The password works on the web login; disabling alice stops her key and her login at once.
        assert _web_login(hub_server, "alice", "alice-secret-1") == 303
        assert "Disabled user alice" in _ok(hub_server, "users", "disable", "alice")
        assert_error(alice.get(f"{API}/models"), 401, "unauthorized")
        assert _web_login(hub_server, "alice", "alice-secret-1") == 401
        assert _row(_ok(hub_server, "users", "list"), "alice")[3] == "disabled"
        assert bob.get(f"{API}/models").status_code == 200  # others are untouched
        _ok(hub_server, "users", "enable", "alice")
        assert alice.get(f"{API}/models").status_code == 200

        # A new password replaces the old one.
        out = _ok(hub_server, "users", "passwd", "alice", "--password-stdin", stdin="alice-secret-2\n")
        assert "Set the password of alice" in out
        assert _web_login(hub_server, "alice", "alice-secret-1") == 401
        assert _web_login(hub_server, "alice", "alice-secret-2") == 303

        # A team project: bob sees its models while he is in the team, and not after.
        shared = alice.post(f"{API}/projects", json={"name": "p2", "team": "vision"})
        assert shared.status_code == 201, shared.text
        r = _put_model(alice, "p2")
        assert r.status_code == 201, r.text
        team_model = r.json()["id"]
        assert bob.get(f"{API}/models/{team_model}").status_code == 200
        assert "members: alice" in _ok(hub_server, "teams", "remove", "vision", "bob")
        assert_error(bob.get(f"{API}/models/{team_model}"), 404, "model_not_found")

    audit = _ok(hub_server, "audit", "--limit", "50")
    for action in ("user.create", "team.create", "team.add", "team.remove", "user.disable", "user.password"):
        line = next((line for line in audit.splitlines() if f" {action} " in line), None)
        assert line is not None and " cli " in line, action
    assert "alice-secret" not in audit and alice_key not in audit


@pytest.fixture(scope="module")
def crew_hub(hub_server_module: HubServer) -> HubServer:
    """The module's hub with a team ``crew`` and a user ``frank`` (not an admin)."""
    _ok(hub_server_module, "teams", "create", "crew")
    _ok(hub_server_module, "users", "create", "frank")
    return hub_server_module


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("users", "create", "Not A Name"), None, "user name must be"),
        (("users", "create", "dave", "--password-stdin"), "short\n", "a password needs 8-1024 characters"),
        (("users", "create", "erin", "--password-stdin"), "", "no password on stdin"),
        (("users", "disable", "nobody"), None, "no user 'nobody'"),
        (("users", "enable", "nobody"), None, "no user 'nobody'"),
        (("users", "passwd", "nobody", "--password-stdin"), "long-enough-1\n", "no user 'nobody'"),
        (("teams", "create", "Bad.Team"), None, "team name must be"),
        (("teams", "add", "nope", "admin"), None, "no team 'nope'"),
        (("teams", "add", "crew", "nobody"), None, "no user 'nobody'"),
        (("teams", "remove", "crew", "nobody"), None, "no user 'nobody'"),
        (("keys", "create", "--user", "nobody"), None, "no user 'nobody'"),
        (("keys", "create", "--user", "frank", "--admin"), None, "is not an admin user"),
        (("keys", "create", "--project", "a/b"), None, "projects"),
        (("keys", "list", "--user", "nobody"), None, "no user 'nobody'"),
    ],
)
def test_cli_errors_are_one_line_and_a_failing_exit_code(
    crew_hub: HubServer, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    done = _cli(crew_hub, *args, stdin=stdin)
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trainhub: error: "), done.stderr
    assert message in lines[0] and "Traceback" not in done.stderr
    assert "Created" not in done.stdout


def test_users_create_with_the_admin_flag_can_hold_admin_keys(hub_server: HubServer) -> None:
    _ok(hub_server, "users", "create", "ops", "--admin", "--password-stdin", stdin="ops-password-1\n")
    key = _new_key(hub_server, "--user", "ops", "--admin", "--name", "ops-admin")
    with client(hub_server, key) as ops:
        assert ops.get(f"{API}/users").status_code == 200  # an admin route
    assert _web_login(hub_server, "ops", "ops-password-1") == 303
