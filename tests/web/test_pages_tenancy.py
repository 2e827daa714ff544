"""Web pages per tenant, over plain HTTP against a real hub: password login, what each user sees.

alice and bob are ordinary users with passwords (made through the admin API); each has a model in
their default project. Every page filters by the session's user: another tenant's model is
missing from the lists and answers 404 like a model that does not exist, on pages, fragments and
the API reached with the session cookie. A wrong password, an unknown user and a disabled user
get the login form again (401, no cookie) and a ``login.failed`` audit entry.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import closing
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from web_helpers import API, api

if TYPE_CHECKING:
    from conftest import HubServer

PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-22", "carol": "carol-password-333"}
CSRF_META = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')
SERVER_NOW = re.compile(r'<meta name="server-now" content="[^"]*">')


def _page_of(r: httpx.Response, model_id: str) -> str:
    """A reply's text with the model id and the server's clock taken out (to compare two replies)."""
    return SERVER_NOW.sub("", r.text.replace(model_id, "ID"))


def _user_key(admin: httpx.Client, user: str, **extra: Any) -> str:
    r = admin.post(f"{API}/keys", json={"name": f"{user}-key", "user": user, **extra})
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


def _model_of(server: HubServer, key: str, name: str) -> str:
    model_id = secrets.token_hex(10)
    r = httpx.put(
        f"{server.url}{API}/models/{model_id}",
        json={"name": name, "epochs": 5},
        headers=server.headers(key),
    )
    assert r.status_code == 201, r.text
    epochs = [{"epoch": 0, "metrics": {"metrics/mAP50(B)": 0.5, "train/box_loss": 1.0}}]
    r = httpx.post(
        f"{server.url}{API}/models/{model_id}/metrics", json={"epochs": epochs}, headers=server.headers(key)
    )
    assert r.status_code == 200, r.text
    return model_id


@pytest.fixture(scope="module")
def hub(hub_server_module: HubServer) -> dict[str, Any]:
    """alice and bob with passwords, keys and one model each; carol with a password only."""
    server = hub_server_module
    with api(server) as admin:
        ids = {}
        for name, password in PASSWORDS.items():
            r = admin.post(f"{API}/users", json={"name": name, "password": password})
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
        keys = {name: _user_key(admin, name) for name in ("alice", "bob")}
    return {
        "server": server,
        "ids": ids,
        "keys": keys,
        "alice_model": _model_of(server, keys["alice"], "alice-run"),
        "bob_model": _model_of(server, keys["bob"], "bob-run"),
    }


def login(server: HubServer, user: str, password: str | None = None, next: str = "/") -> httpx.Client:
    """A client logged in through the password form (fails the test if the login fails)."""
    c = httpx.Client(base_url=server.url, timeout=30)
    r = c.post("/login", data={"username": user, "password": password or PASSWORDS[user], "next": next})
    assert r.status_code == 303 and r.headers["location"] == next, r.text
    assert "trainhub_session" in c.cookies
    return c


@pytest.fixture
def bob(hub: dict[str, Any]) -> Iterator[httpx.Client]:
    with closing(login(hub["server"], "bob")) as c:
        yield c


@pytest.fixture
def alice(hub: dict[str, Any]) -> Iterator[httpx.Client]:
    with closing(login(hub["server"], "alice")) as c:
        yield c


def _audit(server: HubServer) -> list[dict[str, Any]]:
    with api(server) as admin:
        r = admin.get(f"{API}/audit", params={"limit": 1000})
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()
    return entries


def test_the_login_form_asks_for_a_password_or_a_key(hub: dict[str, Any]) -> None:
    html = httpx.get(f"{hub['server'].url}/login").text
    for field in ('name="username"', 'name="password"', 'name="api_key"'):
        assert field in html


def test_bob_sees_only_his_model_on_the_home_page(hub: dict[str, Any], bob: httpx.Client) -> None:
    r = bob.get("/")
    assert r.status_code == 200
    assert hub["bob_model"] in r.text and "bob-run" in r.text
    assert hub["alice_model"] not in r.text and "alice-run" not in r.text
    assert re.search(r'id="who"[^>]*>\s*bob\b', r.text), "the header names the logged-in user"
    # Filtering by alice's project shows nothing either.
    r = bob.get("/", params={"project": "alice"})
    assert hub["alice_model"] not in r.text and "No model matches" in r.text


def test_alices_model_answers_404_to_bob_like_a_missing_one(hub: dict[str, Any], bob: httpx.Client) -> None:
    alice_model, missing = hub["alice_model"], secrets.token_hex(10)
    for path in ("/models/{}", "/models/{}/panel"):
        hidden, absent = bob.get(path.format(alice_model)), bob.get(path.format(missing))
        assert hidden.status_code == absent.status_code == 404, path
        assert _page_of(hidden, alice_model) == _page_of(absent, missing), path
        assert "alice-run" not in hidden.text and "Traceback" not in hidden.text
    page = bob.get(f"/models/{alice_model}")
    assert page.headers["content-type"].startswith("text/html") and "<h1>Not found</h1>" in page.text
    # The session cookie on the API: the same 404 as for a model that does not exist.
    for suffix in ("", "/metrics", "/charts", "/checkpoints"):
        hidden = bob.get(f"{API}/models/{alice_model}{suffix}")
        absent = bob.get(f"{API}/models/{missing}{suffix}")
        assert hidden.status_code == absent.status_code == 404, suffix
        assert hidden.json()["error"]["code"] == absent.json()["error"]["code"] == "model_not_found"
    listed = bob.get(f"{API}/models").json()
    assert alice_model not in str(listed) and hub["bob_model"] in str(listed)


def test_compare_treats_alices_model_as_missing_for_bob(hub: dict[str, Any], bob: httpx.Client) -> None:
    alice_model, bob_model = hub["alice_model"], hub["bob_model"]
    r = bob.get("/compare", params={"ids": [alice_model, bob_model]})
    assert r.status_code == 200
    assert f"Not found: {alice_model}" in r.text  # only the id bob typed himself
    assert "alice-run" not in r.text
    assert f'value="{alice_model}"' not in r.text  # never offered as a choice
    assert f'value="{bob_model}" checked' in r.text
    assert 'id="final-table"' in r.text and f'href="/models/{bob_model}"' in r.text
    assert f'href="/models/{alice_model}"' not in r.text
    series = re.search(r'<script type="application/json" id="compare-data">(.*?)</script>', r.text, re.S)
    assert series is not None and bob_model in series.group(1) and alice_model not in series.group(1)
    # Without ids: the choices are bob's models only.
    choices = bob.get("/compare").text
    assert f'value="{bob_model}"' in choices and f'value="{alice_model}"' not in choices


def test_alice_logs_in_with_her_password_and_sees_her_model(hub: dict[str, Any], alice: httpx.Client) -> None:
    alice_model = hub["alice_model"]
    home = alice.get("/").text
    assert alice_model in home and "alice-run" in home and hub["bob_model"] not in home
    page = alice.get(f"/models/{alice_model}")
    assert page.status_code == 200 and "alice-run" in page.text
    assert 'id="stop-button"' in page.text  # her own active run: she may stop it
    assert alice.get(f"/models/{alice_model}/panel").status_code == 200
    assert alice.get(f"{API}/models/{alice_model}").json()["name"] == "alice-run"
    assert alice.get(f"/models/{hub['bob_model']}").status_code == 404
    # The Stop button's request: the cookie plus the page's CSRF token; bob's session gets a 404.
    token = CSRF_META.search(page.text)
    assert token is not None
    with closing(login(hub["server"], "bob")) as bob:
        bob_token = CSRF_META.search(bob.get("/").text)
        assert bob_token is not None
        r = bob.post(f"{API}/models/{alice_model}/stop", headers={"x-trainhub-csrf": bob_token.group(1)})
        assert r.status_code == 404, r.text
    r = alice.post(f"{API}/models/{alice_model}/stop", headers={"x-trainhub-csrf": token.group(1)})
    assert r.status_code == 200, r.text
    assert alice.get(f"{API}/models/{alice_model}").json()["stop_requested"] is True
    entries = _audit(hub["server"])
    login_entry = next(e for e in entries if e["action"] == "login" and e["target"] == hub["ids"]["alice"])
    assert login_entry["actor"] == f"user:{hub['ids']['alice']}"
    assert PASSWORDS["alice"] not in str(entries)


def test_an_admin_session_sees_every_tenant(hub: dict[str, Any]) -> None:
    server = hub["server"]
    with httpx.Client(base_url=server.url) as admin:
        assert admin.post("/login", data={"api_key": server.api_key, "next": "/"}).status_code == 303
        home = admin.get("/").text
        assert hub["alice_model"] in home and hub["bob_model"] in home
        assert admin.get(f"/models/{hub['alice_model']}").status_code == 200


@pytest.mark.parametrize(
    ("user", "password"),
    [("alice", "not-her-password"), ("nobody", "whatever-password"), ("alice", "")],
)
def test_a_wrong_password_gets_the_form_again_and_is_audited(
    hub: dict[str, Any], user: str, password: str
) -> None:
    server = hub["server"]
    before = max(e["id"] for e in _audit(server))
    with httpx.Client(base_url=server.url) as c:
        r = c.post("/login", data={"username": user, "password": password, "next": "/"})
        assert r.status_code == 401
        assert "set-cookie" not in r.headers and "trainhub_session" not in c.cookies
        assert 'id="login-error"' in r.text and 'name="password"' in r.text
        assert f'value="{user}"' in r.text  # the name stays filled in; the password never echoes
        assert not password or password not in r.text
        assert c.get("/").status_code == 303  # still not logged in
    failed = [e for e in _audit(server) if e["id"] > before and e["action"] == "login.failed"]
    assert len(failed) == 1 and failed[0]["actor"] == "-" and failed[0]["target"] is None
    assert f"user={user}" in failed[0]["detail"]
    assert not password or password not in str(_audit(server))


def test_a_read_only_or_project_limited_key_session_gets_no_stop_button(hub: dict[str, Any]) -> None:
    server = hub["server"]
    with api(server) as admin:
        read_only = _user_key(admin, "alice", read_only=True)
        other_project = _user_key(admin, "alice", projects=["elsewhere"])
    for key, label in ((read_only, "read-only"), (other_project, None)):
        with httpx.Client(base_url=server.url) as c:
            assert c.post("/login", data={"api_key": key, "next": "/"}).status_code == 303
            page = c.get(f"/models/{hub['alice_model']}")
            assert page.status_code == 200 and "alice-run" in page.text
            assert 'id="stop-button"' not in page.text
            assert re.search(r'id="who"[^>]*>\s*alice\b', page.text)
            if label:
                assert label in page.text
            assert c.get(f"/models/{hub['bob_model']}").status_code == 404


def test_a_disabled_user_cannot_log_in_and_their_session_ends(hub: dict[str, Any]) -> None:
    server = hub["server"]
    with closing(login(server, "carol")) as carol, api(server) as admin:
        assert carol.get("/").status_code == 200
        assert carol.get(f"{API}/models").status_code == 200
        assert admin.post(f"{API}/users/carol/disable").status_code == 200

        r = carol.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert carol.get("/models/x/panel").status_code == 401
        assert carol.get(f"{API}/models").status_code == 401
        before = max(e["id"] for e in _audit(server))
        with httpx.Client(base_url=server.url) as again:
            r = again.post("/login", data={"username": "carol", "password": PASSWORDS["carol"]})
            assert r.status_code == 401 and "set-cookie" not in r.headers
        failed = [e for e in _audit(server) if e["id"] > before and e["action"] == "login.failed"]
        assert len(failed) == 1

        assert admin.post(f"{API}/users/carol/enable").status_code == 200
    with closing(login(server, "carol")) as c:
        assert c.get("/").status_code == 200
