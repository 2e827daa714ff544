"""Tenancy on the native API: users, teams, scoped keys; every route of a model checked.

Alice, Bob and Carol are users; Alice and Carol share the team ``vision``. Bob's key must get
404 for every read and write of Alice's models (the same answer as for a model that does not
exist, so ids are not confirmed), lists must not show them, and Alice's data must be unchanged
afterwards. The route table is checked against the server's OpenAPI document, so a new
``{model_id}`` route without a case here fails the test.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from server_helpers import API, assert_error, client

if TYPE_CHECKING:
    from conftest import HubServer

CKPT = b"alice's weights " * 64
#: The content of an upload Alice starts and leaves open (never stored, so never "already present").
PENDING = secrets.token_bytes(1024)
EPOCH0 = {"epoch": 0, "metrics": {"train/box_loss": 1.5, "metrics/mAP50(B)": 0.25}}


@dataclass
class World:
    """The users' keys and Alice's objects."""

    server: HubServer
    keys: dict[str, str]
    model: str
    upload: str
    team_model: str


def _key(admin: httpx.Client, user: str, **extra: Any) -> str:
    r = admin.post(f"{API}/keys", json={"name": f"{user}-key", "user": user, **extra})
    assert r.status_code == 201, r.text
    assert r.json()["user"] == user
    secret: str = r.json()["key"]
    return secret


@pytest.fixture(scope="module")
def world(hub_server_module: HubServer) -> Iterator[World]:
    server = hub_server_module
    with client(server) as admin:
        for name in ("alice", "bob", "carol"):
            assert admin.post(f"{API}/users", json={"name": name}).status_code == 201
        assert admin.post(f"{API}/teams", json={"name": "vision"}).status_code == 201
        for name in ("alice", "carol"):
            assert admin.put(f"{API}/teams/vision/members/{name}").status_code == 200
        keys = {name: _key(admin, name) for name in ("alice", "bob", "carol")}
        keys["alice_ro"] = _key(admin, "alice", read_only=True)
        keys["alice_p1"] = _key(admin, "alice", projects=["alice-p1"])
    model = secrets.token_hex(10)
    with client(server, keys["alice"]) as alice:
        r = alice.put(f"{API}/models/{model}", json={"name": "secret-run"})
        assert r.status_code == 201 and r.json()["project"] == "alice", r.text
        assert alice.post(f"{API}/models/{model}/metrics", json={"epochs": [EPOCH0]}).status_code == 200
        r = alice.put(f"{API}/models/{model}/checkpoints/last", params={"epoch": 0}, content=CKPT)
        assert r.status_code == 201, r.text
        r = alice.post(
            f"{API}/models/{model}/uploads",
            json={"kind": "best", "size": len(PENDING), "sha256": hashlib.sha256(PENDING).hexdigest()},
        )
        assert r.status_code == 201, r.text
        upload = r.json()["upload_id"]
        r = alice.post(f"{API}/projects", json={"name": "vision-runs", "team": "vision"})
        assert r.status_code == 201 and r.json()["owner"] == "vision", r.text
        team_model = secrets.token_hex(10)
        r = alice.put(f"{API}/models/{team_model}", json={"name": "shared", "project": "vision-runs"})
        assert r.status_code == 201, r.text
    yield World(server, keys, model, upload, team_model)


def _cases(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, request kwargs) for every route that names a model, aimed at Alice's."""
    m, u = w.model, w.upload
    json_model = {"json": {"name": "hijack", "project": "alice"}}
    return [
        ("GET", f"/models/{m}", {}),
        ("PUT", f"/models/{m}", json_model),
        ("POST", f"/models/{m}/status", {"json": {"status": "done"}}),
        ("POST", f"/models/{m}/heartbeat", {"json": {"agent": "bob"}}),
        ("POST", f"/models/{m}/stop", {}),
        ("POST", f"/models/{m}/metrics", {"json": {"epochs": [{"epoch": 0, "metrics": {"x": 1.0}}]}}),
        ("GET", f"/models/{m}/metrics", {}),
        ("GET", f"/models/{m}/metrics/series", {"params": {"name": "train/box_loss"}}),
        ("PUT", f"/models/{m}/checkpoints/last", {"content": b"bob"}),
        ("GET", f"/models/{m}/checkpoints", {}),
        ("GET", f"/models/{m}/checkpoints/last/download", {}),
        ("POST", f"/models/{m}/uploads", {"json": {"kind": "last", "size": 3, "sha256": "0" * 64}}),
        ("GET", f"/models/{m}/uploads/{u}", {}),
        ("PUT", f"/models/{m}/uploads/{u}/parts/1", {"content": b"bob"}),
        ("POST", f"/models/{m}/uploads/{u}/complete", {}),
        ("DELETE", f"/models/{m}/uploads/{u}", {}),
        ("GET", f"/models/{m}/charts", {}),
        ("GET", f"/models/{m}/charts/series", {"params": {"name": "train/box_loss"}}),
        ("GET", "/compare", {"params": {"ids": [m]}}),
    ]


def _template(path: str) -> str:
    """A concrete path as its OpenAPI template (ids -> {model_id}, {upload_id}, {kind}, ...)."""
    parts = path.split("?")[0].strip("/").split("/")
    names = {1: "{model_id}"}
    out = []
    for i, part in enumerate(parts):
        if i in names and parts[0] == "models":
            out.append(names[i])
        elif i == 3 and parts[2] == "uploads":
            out.append("{upload_id}")
        elif i == 3 and parts[2] == "checkpoints":
            out.append("{kind}")
        elif i == 5 and parts[4] == "parts":
            out.append("{number}")
        else:
            out.append(part)
    return API + "/" + "/".join(out)


def test_every_model_route_has_a_cross_tenant_case(world: World) -> None:
    with client(world.server) as admin:
        spec = admin.get("/openapi.json").json()
    wanted = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        if path.startswith(API) and "{model_id}" in path
        for method in ops
    }
    wanted.add(("GET", f"{API}/compare"))
    covered = {(method, _template(path)) for method, path, _ in _cases(world)}
    assert wanted <= covered, sorted(wanted - covered)


def test_another_users_key_gets_404_for_every_read_and_write(world: World) -> None:
    with client(world.server, world.keys["alice"]) as alice:
        before = {
            "model": alice.get(f"{API}/models/{world.model}").json(),
            "metrics": alice.get(f"{API}/models/{world.model}/metrics").json(),
            "checkpoints": alice.get(f"{API}/models/{world.model}/checkpoints").json(),
            "upload": alice.get(f"{API}/models/{world.model}/uploads/{world.upload}").json(),
        }
    with client(world.server, world.keys["bob"]) as bob:
        for method, path, kwargs in _cases(world):
            r = bob.request(method, API + path, **kwargs)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "model_not_found", (method, path, r.text)
            assert world.model not in r.text.replace(f"no model with id {world.model!r}", "")
        # The same answer as for a model that does not exist.
        missing = secrets.token_hex(10)
        assert_error(bob.get(f"{API}/models/{missing}"), 404, "model_not_found")
        assert bob.get(f"{API}/models").json() == []
        assert [p["name"] for p in bob.get(f"{API}/projects").json()] == []
        assert world.model not in bob.get(f"{API}/models", params={"q": "secret"}).text
        # Writing into Alice's project (or the team's) is refused.
        r = bob.post(f"{API}/models", json={"name": "x", "project": "alice"})
        assert_error(r, 403, "forbidden")
        assert_error(bob.post(f"{API}/projects", json={"name": "vision-runs"}), 403, "forbidden")
        assert_error(bob.post(f"{API}/projects", json={"name": "p", "team": "vision"}), 404, "team_not_found")
        # Bob's own model goes to his own default project.
        r = bob.post(f"{API}/models", json={"name": "bobs"})
        assert r.status_code == 201 and r.json()["project"] == "bob", r.text
    with client(world.server, world.keys["alice"]) as alice:
        after = {
            "model": alice.get(f"{API}/models/{world.model}").json(),
            "metrics": alice.get(f"{API}/models/{world.model}/metrics").json(),
            "checkpoints": alice.get(f"{API}/models/{world.model}/checkpoints").json(),
            "upload": alice.get(f"{API}/models/{world.model}/uploads/{world.upload}").json(),
        }
        r = alice.get(f"{API}/models/{world.model}/checkpoints/last/download")
        assert r.content == CKPT
        assert "bobs" not in alice.get(f"{API}/models").text
    for part in ("model", "metrics", "checkpoints", "upload"):
        if part == "model":
            for volatile in ("status", "updated_at"):
                before["model"].pop(volatile), after["model"].pop(volatile)
        assert after[part] == before[part], part


def test_team_members_share_team_projects_only(world: World) -> None:
    with client(world.server, world.keys["carol"]) as carol:
        assert carol.get(f"{API}/models/{world.team_model}").status_code == 200
        r = carol.post(f"{API}/models/{world.team_model}/metrics", json={"epochs": [EPOCH0]})
        assert r.status_code == 200, r.text
        assert_error(carol.get(f"{API}/models/{world.model}"), 404, "model_not_found")
        listed = {m["id"] for m in carol.get(f"{API}/models").json()}
        assert world.team_model in listed and world.model not in listed
        r = carol.post(f"{API}/models", json={"name": "c", "project": "vision-runs"})
        assert r.status_code == 201, r.text
    with client(world.server, world.keys["bob"]) as bob:
        assert_error(bob.get(f"{API}/models/{world.team_model}"), 404, "model_not_found")


def test_read_only_and_project_limited_keys(world: World) -> None:
    with client(world.server, world.keys["alice_ro"]) as ro:
        assert ro.get(f"{API}/models/{world.model}").status_code == 200
        r = ro.post(f"{API}/models/{world.model}/metrics", json={"epochs": [EPOCH0]})
        assert_error(r, 403, "forbidden")
        assert_error(ro.post(f"{API}/models", json={"name": "x"}), 403, "forbidden")
    with client(world.server, world.keys["alice_p1"]) as p1:
        assert p1.get(f"{API}/models/{world.model}").status_code == 200  # reads all of Alice's
        r = p1.post(f"{API}/models/{world.model}/metrics", json={"epochs": [EPOCH0]})
        assert_error(r, 403, "forbidden")
        assert_error(p1.post(f"{API}/models", json={"name": "x", "project": "alice"}), 403, "forbidden")
        assert_error(p1.post(f"{API}/models", json={"name": "x", "project": "p2"}), 403, "forbidden")
        r = p1.post(f"{API}/models", json={"name": "x", "project": "alice-p1"})
        assert r.status_code == 201, r.text
        assert p1.post(f"{API}/models/{r.json()['id']}/metrics", json={"epochs": [EPOCH0]}).status_code == 200


def test_admin_routes_need_an_admin_key(world: World) -> None:
    with client(world.server, world.keys["alice"]) as alice:
        for method, path in [
            ("GET", "/keys"),
            ("POST", "/keys"),
            ("GET", "/users"),
            ("POST", "/users"),
            ("GET", "/teams"),
            ("PUT", "/teams/vision/members/alice"),
            ("GET", "/audit"),
        ]:
            kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "POST" else {}
            assert_error(alice.request(method, API + path, **kwargs), 403, "forbidden")
    with client(world.server) as admin:
        r = admin.post(f"{API}/keys", json={"name": "x", "user": "alice", "is_admin": True})
        assert_error(r, 422, "validation_error")
        assert_error(admin.post(f"{API}/keys", json={"name": "x", "user": "nobody"}), 404, "user_not_found")
        users = {u["name"]: u for u in admin.get(f"{API}/users").json()}
        assert users["alice"]["teams"] == ["vision"] and "password_hash" not in users["alice"]
        # The admin user sees every tenant's models.
        listed = {m["id"] for m in admin.get(f"{API}/models").json()}
        assert {world.model, world.team_model} <= listed


def test_usage_event_summaries_are_per_user(world: World) -> None:
    event = {"kind": "train_start", "install_id": "i-" + secrets.token_hex(4), "versions": {}}
    with client(world.server, world.keys["carol"]) as carol:
        before = carol.get(f"{API}/events/summary").json()["total"]
        r = carol.post(f"{API}/events", json={"events": [{**event, "id": secrets.token_hex(8)}]})
        assert r.status_code == 202, r.text
        assert carol.get(f"{API}/events/summary").json()["total"] == before + 1
    with client(world.server, world.keys["bob"]) as bob:
        bob_total = bob.get(f"{API}/events/summary").json()["total"]
    with client(world.server) as admin:
        assert admin.get(f"{API}/events/summary").json()["total"] >= before + 1 + bob_total


def test_disabling_a_user_stops_their_keys_at_once(hub_server: HubServer) -> None:
    with client(hub_server) as admin:
        assert admin.post(f"{API}/users", json={"name": "dave"}).status_code == 201
        key = _key(admin, "dave")
        with client(hub_server, key) as dave:
            assert dave.get(f"{API}/models").status_code == 200
            r = admin.post(f"{API}/users/dave/disable")
            assert r.status_code == 200 and r.json()["disabled_at"], r.text
            assert_error(dave.get(f"{API}/models"), 401, "unauthorized")
            assert admin.post(f"{API}/users/dave/enable").status_code == 200
            assert dave.get(f"{API}/models").status_code == 200
        assert_error(admin.post(f"{API}/users", json={"name": "dave"}), 409, "conflict")
        assert_error(admin.post(f"{API}/users", json={"name": "Bad Name"}), 422, "validation_error")
        assert_error(admin.post(f"{API}/users/nobody/disable"), 404, "user_not_found")
        assert_error(admin.post(f"{API}/users/admin/disable"), 409, "conflict")  # the last admin
        assert admin.get(f"{API}/models").status_code == 200


def test_already_present_never_answers_for_another_tenants_file(world: World) -> None:
    digest = hashlib.sha256(CKPT).hexdigest()
    body = {"kind": "last", "size": len(CKPT), "sha256": digest}
    with client(world.server, world.keys["bob"]) as bob:
        r = bob.post(f"{API}/models", json={"name": "probe"})
        assert r.status_code == 201, r.text
        r = bob.post(f"{API}/models/{r.json()['id']}/uploads", json=body)
        # Alice's checkpoint has these bytes, but Bob is not told: he must send them.
        assert r.status_code == 201 and r.json()["already_present"] is False, r.text
    with client(world.server, world.keys["alice"]) as alice:
        other = secrets.token_hex(10)
        assert alice.put(f"{API}/models/{other}", json={"name": "again"}).status_code == 201
        r = alice.post(f"{API}/models/{other}/uploads", json=body)
        assert r.status_code == 200 and r.json()["already_present"] is True, r.text
