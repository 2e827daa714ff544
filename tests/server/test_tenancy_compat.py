"""Tenancy on the Ultralytics compatibility APIs (HUB ``/v1``, Platform ``/api``, signed files) and
the native dataset API: one tenant never reads, changes or lists another's models, projects and
datasets, and is never handed a signed URL of them.

Alice (a user with a key) creates a model, metrics, a checkpoint and a dataset through each
family; then every route of those APIs is tried by Bob (another user), by a read-only key of
Alice and by a key of Alice limited to project ``p1``. The cases are a table over
``(method, route)``: :func:`test_every_compat_and_dataset_route_has_a_case` fails when a route is
added to the app without a case here.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi.routing import APIRoute
from server_helpers import API, client, sha256

from trainhub.server.app import create_app
from trainhub.server.settings import ServerSettings

if TYPE_CHECKING:
    from conftest import HubServer

World = dict[str, Any]
_SIGNED = re.compile(r"/(?:dl|up)/\d+/[0-9a-f]+/")


def _dataset_zip(tag: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{tag}/data.yaml", "train: images/train\nval: images/val\nnames:\n  0: a\n")
        zf.writestr(f"{tag}/images/train/a.png", tag.encode())
    return buf.getvalue()


def _checkpoint(tag: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # a torch >= 1.6 checkpoint is a zip archive
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00." + tag.encode())
    return buf.getvalue()


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, (r.request.method, r.request.url.path, r.status_code, r.text)
    return r.json()


def _compat(hub: HubServer, key: str) -> httpx.Client:
    """A client of the compat APIs with ``key`` (as the clients send it: ``x-api-key``)."""
    return httpx.Client(base_url=hub.url, headers={"x-api-key": key}, timeout=30, trust_env=False)


def _event(**body: Any) -> dict[str, Any]:
    return {"json": body}


# --- the world: users, keys and Alice's objects ---------------------------------------------------


def _make_key(admin: httpx.Client, **body: Any) -> str:
    return str(_ok(admin.post(f"{API}/keys", json=body), 201)["key"])


def _alice_objects(hub: HubServer, key: str) -> World:
    w: World = {}
    with _compat(hub, key) as c:
        # HUB: a project, a dataset with its zip, a model in the project using the dataset,
        # metrics, a `last` checkpoint and a heartbeat.
        w["hub_project"] = _ok(c.post("/v1/projects", json={"meta": {"name": "alice-hub"}}))["data"]["id"]
        w["hub_ds"] = _ok(c.post("/v1/datasets", json={"meta": {"name": "alice-hubds"}}))["data"]["id"]
        w["hub_zip"] = _dataset_zip("alicehub")
        files = {"file": ("alicehub.zip", w["hub_zip"])}
        _ok(c.post(f"/v1/datasets/{w['hub_ds']}/upload", files=files))
        payload = {
            "meta": {"name": "hubmodel"},
            "projectId": w["hub_project"],
            "config": {"epochs": 3, "imageSize": 64},
            "dataset": {"id": w["hub_ds"]},
        }
        w["hub_model"] = _ok(c.post("/v1/models", json=payload))["data"]["id"]
        metrics = {"0": json.dumps({"train/box_loss": 1.5, "metrics/mAP50-95(B)": 0.25})}
        _ok(c.post(f"/v1/models/{w['hub_model']}", json={"metrics": metrics, "type": "metrics"}))
        w["hub_ckpt"] = _checkpoint("alicehub")
        fields = {"type": "epoch", "epoch": "0", "isBest": "True"}
        _ok(
            c.post(
                f"/v1/models/{w['hub_model']}/upload", data=fields, files={"file": ("last.pt", w["hub_ckpt"])}
            )
        )
        _ok(c.post(f"/v1/agent/heartbeat/models/{w['hub_model']}", json={"agent": "alice-box"}))
        doc = _ok(c.get(f"/v1/models/{w['hub_model']}"))["data"]
        assert doc["project"] == "alice-hub"
        assert "/dl/" in doc["data"] and "/dl/" in doc["resume"], doc  # Alice gets her signed URLs

        # Platform: a run in project alice-plat with an epoch and a promoted best.pt.
        started = c.post(
            "/api/webhooks/training/metrics",
            json={
                "event": "training_started",
                "project": "alice/alice-plat",
                "name": "platmodel",
                "data": {"trainArgs": {"epochs": "2"}, "epochs": 2},
            },
        )
        w["plat_model"] = _ok(started)["modelId"]
        run = started.json()["runId"]
        epoch = {"epoch": 0, "metrics": {"train/box_loss": 2.0, "metrics/mAP50-95(B)": 0.5}}
        _ok(
            c.post(
                "/api/webhooks/training/metrics",
                json={"event": "epoch_end", "modelId": w["plat_model"], "data": epoch},
            )
        )
        staged = _ok(
            c.post(
                "/api/webhooks/models/upload",
                json={"modelId": w["plat_model"], "filename": "best.pt", "runId": run},
            )
        )
        w["plat_upload_path"] = staged["uploadPath"]
        w["plat_upload_id"] = staged["uploadPath"].split("/")[2]
        w["plat_ckpt"] = _checkpoint("aliceplat")
        _ok(httpx.put(staged["uploadUrl"], content=w["plat_ckpt"], timeout=30, trust_env=False))
        saved = {
            "event": "checkpoint_saved",
            "modelId": w["plat_model"],
            "data": {"uploadPath": staged["uploadPath"]},
        }
        _ok(c.post("/api/webhooks/training/metrics", json=saved))
        listed = _ok(c.get("/api/models/alice/alice-plat/platmodel/files"))["files"]
        assert [f["name"] for f in listed] == ["best.pt"] and "/dl/" in listed[0]["downloadUrl"]
        # A model in project p2 (for the key limited to p1).
        p2 = {"meta": {"name": "p2m"}, "project": "p2"}
        w["p2_model"] = _ok(c.post("/v1/models", json=p2))["data"]["id"]

    with client(hub, key) as n:
        # Native datasets API.
        w["nat_ds"] = _ok(n.post(f"{API}/datasets", json={"name": "alice-natds"}), 201)["id"]
        w["nat_zip"] = _dataset_zip("alicenat")
        up = n.put(f"{API}/datasets/{w['nat_ds']}/file", params={"filename": "nat.zip"}, content=w["nat_zip"])
        assert _ok(up)["ready"] is True
    w["secrets"] = [sha256(w[k]) for k in ("hub_zip", "nat_zip", "hub_ckpt", "plat_ckpt")]
    w["names"] = [
        w["hub_model"],
        w["plat_model"],
        w["p2_model"],
        w["hub_ds"],
        w["nat_ds"],
        "alice-hub",
        "alice-plat",
        "alice-hubds",
        "alice-natds",
        *w["secrets"],
    ]
    return w


@pytest.fixture(scope="module")
def world(hub_server_module: HubServer) -> Iterator[World]:
    hub = hub_server_module
    with client(hub) as admin:
        for name in ("alice", "bob"):
            _ok(admin.post(f"{API}/users", json={"name": name}), 201)
        keys = {
            "alice": _make_key(admin, name="a", user="alice"),
            "bob": _make_key(admin, name="b", user="bob"),
            "alice_ro": _make_key(admin, name="ar", user="alice", read_only=True),
            "alice_p1": _make_key(admin, name="ap1", user="alice", projects=["p1"]),
        }
        w = _alice_objects(hub, keys["alice"])
        w.update(keys=keys, hub=hub)
        yield w


def _normalized(text: str) -> str:
    return _SIGNED.sub("/signed/", text)


def _alice_state(w: World) -> list[str]:
    """Everything Alice sees of her objects (signed URLs without their expiry and signature)."""
    hub, key = w["hub"], w["keys"]["alice"]
    paths = [
        f"/v1/models/{w['hub_model']}",
        f"/v1/models/{w['hub_model']}/metrics",
        f"/v1/projects/{w['hub_project']}",
        f"/v1/datasets/{w['hub_ds']}",
        "/api/models/alice/alice-plat/platmodel/files",
        f"{API}/projects",
        f"{API}/datasets",
        f"{API}/datasets/{w['nat_ds']}",
    ]
    for model in ("hub_model", "plat_model", "p2_model"):
        paths += [
            f"{API}/models/{w[model]}",
            f"{API}/models/{w[model]}/metrics",
            f"{API}/models/{w[model]}/checkpoints",
        ]
    state = []
    with _compat(hub, key) as c:
        for path in paths:
            r = c.get(path, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, (path, r.text)
            state.append(f"{path} {_normalized(r.text)}")
    return state


# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request: ``route`` is the app's path template; ``path`` has ``{world}`` placeholders.

    ``kind``: ``alice`` (about Alice's objects: Bob gets ``bob_status``), ``list`` (Bob gets 200
    without Alice's objects), ``own`` (Bob acts on his own things: 2xx, nothing of Alice's),
    ``signed`` (no key: a forged signed URL is refused).
    """

    method: str
    route: str
    path: str
    kind: str
    bob_status: int = 404
    kwargs: Callable[[World], dict[str, Any]] = field(default=lambda w: {})

    @property
    def write(self) -> bool:
        return self.method not in ("GET", "HEAD")


def _metrics(epoch: int) -> dict[str, Any]:
    return {"json": {"metrics": {str(epoch): json.dumps({"train/box_loss": 9.0})}, "type": "metrics"}}


def _plat(event: str, **extra: Any) -> Callable[[World], dict[str, Any]]:
    data = {
        "epoch_end": {"epoch": 7, "metrics": {"train/box_loss": 9.0}},
        "training_complete": {"results": {"metrics": {"metrics/mAP50-95(B)": 0.0}}},
        "checkpoint_saved": {"uploadPath": "{plat_upload_path}"},
    }.get(event, {"trainArgs": {}, "epochs": 2})

    def kwargs(w: World) -> dict[str, Any]:
        body: dict[str, Any] = {"event": event, "data": data, **extra}
        if body.get("modelId") == "{plat_model}":
            body["modelId"] = w["plat_model"]
        if "uploadPath" in data:
            body["data"] = {"uploadPath": w["plat_upload_path"]}
        return {"json": body}

    return kwargs


_M = "/v1/models/{model_id}"
_D = "/v1/datasets/{dataset_id}"
_P = "/v1/projects/{project_id}"
_EVENTS = "/api/webhooks/training/metrics"
_UPLOAD = "/api/webhooks/models/upload"
_FILES = "/api/models/{owner}/{project}/{model}/files"
_DL = "/dl/{exp}/{sig}/{sha256}/{ident}/{filename}"
_UP = "/up/{exp}/{sig}/{upload_id}/{filename}"
_ND = f"{API}/datasets/{{dataset_id}}"
_BY_NAME = {"project": "alice/alice-plat", "name": "platmodel"}

CASES: list[Case] = [
    # HUB (/v1)
    Case("POST", "/v1/auth", "/v1/auth", "own"),
    Case("GET", "/v1/models", "/v1/models?limit=1000", "list"),
    Case("GET", "/v1/models", "/v1/models?limit=5&last_doc_id={hub_model}", "list"),
    Case("POST", "/v1/models", "/v1/models", "own", kwargs=lambda w: {"json": {"meta": {"name": "bobm"}}}),
    Case(
        "POST",
        "/v1/models",
        "/v1/models",
        "alice",
        kwargs=lambda w: {"json": {"meta": {"name": "x"}, "projectId": w["hub_project"]}},
    ),
    Case(
        "POST",
        "/v1/models",
        "/v1/models",
        "alice",
        kwargs=lambda w: {"json": {"meta": {"name": "x"}, "project": "alice-hub"}},
    ),
    Case("GET", _M, "/v1/models/{hub_model}", "alice"),
    Case("POST", _M, "/v1/models/{hub_model}", "alice", kwargs=lambda w: _metrics(5)),
    Case(
        "PATCH", _M, "/v1/models/{hub_model}", "alice", kwargs=lambda w: {"json": {"meta": {"name": "bob"}}}
    ),
    Case("GET", f"{_M}/metrics", "/v1/models/{hub_model}/metrics", "alice"),
    Case(
        "POST",
        f"{_M}/upload",
        "/v1/models/{hub_model}/upload",
        "alice",
        kwargs=lambda w: {"data": {"type": "final"}, "files": {"file": ("best.pt", _checkpoint("bob"))}},
    ),
    Case(
        "POST",
        "/v1/agent/heartbeat/models/{model_id}",
        "/v1/agent/heartbeat/models/{hub_model}",
        "alice",
        kwargs=lambda w: {"json": {"agent": "bob"}},
    ),
    Case("GET", "/v1/datasets", "/v1/datasets?limit=1000", "list"),
    Case("GET", "/v1/datasets", "/v1/datasets?limit=5&last_doc_id={hub_ds}", "list"),
    Case(
        "POST", "/v1/datasets", "/v1/datasets", "own", kwargs=lambda w: {"json": {"meta": {"name": "bobds"}}}
    ),
    Case("GET", _D, "/v1/datasets/{hub_ds}", "alice"),
    Case("GET", _D, "/v1/datasets/{nat_ds}", "alice"),
    Case(
        "POST",
        f"{_D}/upload",
        "/v1/datasets/{hub_ds}/upload",
        "alice",
        kwargs=lambda w: {"files": {"file": ("bob.zip", _dataset_zip("bob"))}},
    ),
    Case("GET", "/v1/projects", "/v1/projects?limit=1000", "list"),
    Case(
        "POST", "/v1/projects", "/v1/projects", "own", kwargs=lambda w: {"json": {"meta": {"name": "bobp"}}}
    ),
    Case(
        "POST",
        "/v1/projects",
        "/v1/projects",
        "alice",
        403,
        kwargs=lambda w: {"json": {"meta": {"name": "alice-hub"}}},
    ),
    Case("GET", _P, "/v1/projects/{hub_project}", "alice"),
    Case("GET", _P, "/v1/projects/alice-hub", "alice"),
    Case(
        "POST",
        f"{_P}/upload",
        "/v1/projects/{hub_project}/upload",
        "alice",
        kwargs=lambda w: {"files": {"file": ("cover.png", b"png")}},
    ),
    # Platform (/api)
    Case("GET", "/api/account/summary", "/api/account/summary", "own"),
    Case(
        "POST",
        _EVENTS,
        _EVENTS,
        "own",
        kwargs=_plat("training_started", project="bob/bob-plat", name="bobrun"),
    ),
    Case("POST", _EVENTS, _EVENTS, "alice", kwargs=_plat("training_started", modelId="{plat_model}")),
    Case("POST", _EVENTS, _EVENTS, "alice", 403, kwargs=_plat("training_started", **_BY_NAME)),
    *(
        Case("POST", _EVENTS, _EVENTS, "alice", kwargs=_plat(event, modelId="{plat_model}"))
        for event in (
            "training_progress",
            "epoch_end",
            "system_metrics",
            "console_output",
            "checkpoint_saved",
            "training_complete",
            "training_failed",
        )
    ),
    *(
        Case("POST", _EVENTS, _EVENTS, "alice", kwargs=_plat(event, **_BY_NAME))
        for event in ("epoch_end", "checkpoint_saved", "training_complete", "training_failed")
    ),
    Case(
        "POST",
        _UPLOAD,
        _UPLOAD,
        "alice",
        kwargs=lambda w: {"json": {"modelId": w["plat_model"], "filename": "best.pt", "runId": 1}},
    ),
    Case("POST", _UPLOAD, _UPLOAD, "alice", kwargs=lambda w: {"json": {**_BY_NAME, "filename": "best.pt"}}),
    Case("GET", _FILES, "/api/models/alice/alice-plat/platmodel/files", "alice"),
    Case("GET", _FILES, "/api/models/bob/alice-plat/platmodel/files", "alice"),
    Case("GET", _FILES, "/api/models/x/y/{plat_model}/files", "alice"),
    Case("GET", _FILES, "/api/models/x/y/{hub_model}/files", "alice"),
    # Signed files: no key; only a signature (which only Alice was given) opens them.
    Case("GET", _DL, "/dl/9999999999/{forged}/{hub_ckpt_sha}/{hub_model}/best.pt", "signed"),
    Case("HEAD", _DL, "/dl/9999999999/{forged}/{hub_zip_sha}/{hub_ds}/alicehub.zip", "signed"),
    Case(
        "PUT",
        _UP,
        "/up/9999999999/{forged}/{plat_upload_id}/best.pt",
        "signed",
        kwargs=lambda w: {"content": _checkpoint("bob")},
    ),
    # Native datasets (/api/v1)
    Case("GET", f"{API}/datasets", f"{API}/datasets?limit=1000", "list"),
    Case("GET", f"{API}/datasets", f"{API}/datasets?after={{nat_ds}}", "list"),
    Case("POST", f"{API}/datasets", f"{API}/datasets", "own", kwargs=lambda w: {"json": {"name": "bobnat"}}),
    Case("GET", _ND, f"{API}/datasets/{{nat_ds}}", "alice"),
    Case("GET", _ND, f"{API}/datasets/{{hub_ds}}", "alice"),
    Case(
        "PUT",
        f"{_ND}/file",
        f"{API}/datasets/{{nat_ds}}/file",
        "alice",
        kwargs=lambda w: {"content": _dataset_zip("bob"), "params": {"filename": "bob.zip"}},
    ),
    Case("GET", f"{_ND}/download", f"{API}/datasets/{{nat_ds}}/download", "alice"),
    Case("GET", f"{_ND}/download", f"{API}/datasets/{{hub_ds}}/download", "alice"),
]


def _in_scope(path: str) -> bool:
    """The routes this file covers: both compat families, the signed files, native datasets."""
    if path.startswith(f"{API}/"):
        return path.startswith(f"{API}/datasets")
    return path.startswith(("/v1/", "/api/", "/dl/", "/up/"))


def _app_routes(routes: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(method, path)`` of every API route, through included routers (which FastAPI >= 0.160
    keeps as router objects with their include prefix instead of copying their routes)."""
    for route in routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                yield method, prefix + route.path
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _app_routes(inner.routes, prefix + route.include_context.prefix)


def test_every_compat_and_dataset_route_has_a_case(tmp_path: Path) -> None:
    app = create_app(ServerSettings(data_dir=tmp_path))
    every = set(_app_routes(app.routes))
    assert ("GET", f"{API}/models/{{model_id}}") in every  # the walk sees the included routers
    routes = {(method, path) for method, path in every if _in_scope(path)}
    covered = {(c.method, c.route) for c in CASES}
    assert routes - covered == set(), "routes without a tenancy case"
    assert covered - routes == set(), "cases of routes that do not exist"


def _fill(w: World, case: Case) -> tuple[str, dict[str, Any]]:
    values = dict(
        hub_model=w["hub_model"],
        hub_ds=w["hub_ds"],
        nat_ds=w["nat_ds"],
        hub_project=w["hub_project"],
        plat_model=w["plat_model"],
        plat_upload_id=w["plat_upload_id"],
        hub_ckpt_sha=sha256(w["hub_ckpt"]),
        hub_zip_sha=sha256(w["hub_zip"]),
        forged="0" * 40,
    )
    return case.path.format(**values), case.kwargs(w)


def _shape_ok(path: str, r: httpx.Response) -> bool:
    """The error is in the shape of the route's family."""
    body = r.json() if r.content else None
    if path.startswith(f"{API}/"):
        return (
            isinstance(body, dict) and isinstance(body.get("error"), dict) and bool(body["error"].get("code"))
        )
    if path.startswith("/v1/"):
        return isinstance(body, dict) and body.get("success") is False and bool(body.get("message"))
    return isinstance(body, dict) and bool(body.get("error")) and bool(body.get("code"))


def _send(hub: HubServer, key: str | None, w: World, case: Case) -> tuple[str, httpx.Response]:
    path, kwargs = _fill(w, case)
    headers = {"x-api-key": key} if key is not None else {}
    if path.startswith(f"{API}/") and key is not None:
        headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=hub.url, timeout=30, trust_env=False, follow_redirects=False) as c:
        return path, c.request(case.method, path, headers=headers, **kwargs)


def _leaks(w: World, r: httpx.Response, *, strict: bool) -> list[str]:
    """What of Alice's the reply shows: blob hashes and signed URLs always; with ``strict``, any
    of her ids and names (an error message may echo the id that was asked for)."""
    text = r.text
    found = [s for s in w["secrets"] if s in text]
    if _SIGNED.search(text):
        found.append("a signed URL")
    if strict:
        found += [n for n in w["names"] if n in text]
    return found


def test_bob_reaches_none_of_alices_objects(world: World) -> None:
    w, hub = world, world["hub"]
    before = _alice_state(w)
    problems: list[str] = []
    for case in CASES:
        key = None if case.kind == "signed" else w["keys"]["bob"]
        path, r = _send(hub, key, w, case)
        where = f"{case.method} {path} ({case.kind}) -> {r.status_code} {r.text[:300]}"
        if case.kind in ("alice", "signed"):
            expected = 403 if case.kind == "signed" else case.bob_status
            if r.status_code != expected:
                problems.append(f"expected {expected}: {where}")
            elif case.method != "HEAD" and not _shape_ok(path, r):
                problems.append(f"error shape: {where}")
            leaks = _leaks(w, r, strict=False)
        else:
            if not 200 <= r.status_code < 300:
                problems.append(f"expected 2xx: {where}")
            leaks = _leaks(w, r, strict=True)
        if leaks:
            problems.append(f"leaks {leaks}: {where}")
    assert problems == [], "\n".join(problems)
    assert _alice_state(w) == before


def test_bobs_lists_and_account_are_his_own(world: World) -> None:
    w, bob = world, world["keys"]["bob"]
    with _compat(w["hub"], bob) as c:
        assert c.get("/api/account/summary").json()["username"] == "bob"
        made = _ok(c.post("/v1/models", json={"meta": {"name": "mine"}}))["data"]["id"]
        assert _ok(c.get(f"/v1/models/{made}"))["data"]["project"] == "bob"  # his default project
        models = _ok(c.get("/v1/models", params={"limit": 1000}))["data"]
        assert made in [m["id"] for m in models["results"]] and models["total"] == len(models["results"])
        assert {m["project"] for m in models["results"]} <= {"bob", "bobp", "bob-plat"}
        projects = _ok(c.get("/v1/projects", params={"limit": 1000}))["data"]["results"]
        assert "alice-hub" not in {p["name"] for p in projects} and "bob" in {p["name"] for p in projects}
    with client(w["hub"]) as admin:  # an admin user sees every tenant's objects
        with _compat(w["hub"], str(w["hub"].api_key)) as c:
            ids = {m["id"] for m in _ok(c.get("/v1/models", params={"limit": 1000}))["data"]["results"]}
            assert {w["hub_model"], w["plat_model"], made} <= ids
        assert {w["nat_ds"], w["hub_ds"]} <= {d["id"] for d in _ok(admin.get(f"{API}/datasets"))}


def test_a_model_naming_another_tenants_dataset_gets_no_url(world: World) -> None:
    w = world
    with _compat(w["hub"], w["keys"]["bob"]) as c:
        payload = {"meta": {"name": "thief"}, "dataset": {"id": w["hub_ds"]}}
        made = _ok(c.post("/v1/models", json=payload))["data"]["id"]
        for path in (f"/v1/models/{made}", "/v1/models?limit=1000"):
            r = c.get(path)
            assert r.status_code == 200 and not _SIGNED.search(r.text), r.text
        assert _ok(c.get(f"/v1/models/{made}"))["data"]["data"] == w["hub_ds"]
    with _compat(w["hub"], w["keys"]["alice"]) as c:  # the owner of the dataset does get it
        assert "/dl/" in _ok(c.get(f"/v1/models/{w['hub_model']}"))["data"]["data"]


def test_a_read_only_key_reads_but_never_writes(world: World) -> None:
    w, hub = world, world["hub"]
    before = _alice_state(w)
    problems: list[str] = []
    for case in CASES:
        if case.kind == "signed":
            continue
        path, r = _send(hub, w["keys"]["alice_ro"], w, case)
        where = f"{case.method} {path} -> {r.status_code} {r.text[:300]}"
        if case.write and case.route != "/v1/auth":
            if r.status_code != 403 or not _shape_ok(path, r):
                problems.append(f"expected 403: {where}")
        elif r.status_code != 200:
            problems.append(f"expected 200: {where}")
    assert problems == [], "\n".join(problems)
    assert _alice_state(w) == before


def test_a_key_limited_to_p1_cannot_write_p2(world: World) -> None:
    w, hub = world, world["hub"]
    before = _alice_state(w)
    p2 = w["p2_model"]
    with _compat(hub, w["keys"]["alice_p1"]) as c:
        assert _ok(c.get(f"/v1/models/{p2}"))["data"]["project"] == "p2"  # it sees p2...
        p2_id = next(
            p["id"]
            for p in _ok(c.get("/v1/projects", params={"limit": 1000}))["data"]["results"]
            if p["name"] == "p2"
        )
        denied = [  # ...but writes nothing there
            c.post("/v1/models", json={"meta": {"name": "x"}, "project": "p2"}),
            c.post("/v1/models", json={"meta": {"name": "x"}, "projectId": p2_id}),
            c.post("/v1/models", json={"meta": {"name": "x"}}),  # its default project is not p1
            c.post(f"/v1/models/{p2}", **_metrics(3)),
            c.patch(f"/v1/models/{p2}", json={"meta": {"name": "renamed"}}),
            c.post(f"/v1/agent/heartbeat/models/{p2}", json={"agent": "x"}),
            c.post(
                f"/v1/models/{p2}/upload",
                data={"type": "epoch"},
                files={"file": ("last.pt", _checkpoint("p"))},
            ),
            c.post("/v1/projects", json={"meta": {"name": "p2"}}),
            c.post("/v1/projects", json={"meta": {"name": "p3"}}),
            c.post(f"/v1/projects/{p2_id}/upload", files={"file": ("c.png", b"png")}),
            c.post("/v1/datasets", json={"meta": {"name": "d"}}),  # such a key makes no datasets
            c.post(f"/v1/datasets/{w['hub_ds']}/upload", files={"file": ("d.zip", _dataset_zip("p"))}),
            c.post(_EVENTS, **_plat("training_started", project="alice/p2", name="x")(w)),
            c.post(
                _EVENTS, json={"event": "epoch_end", "modelId": p2, "data": {"epoch": 1, "metrics": {"a": 1}}}
            ),
            c.post(_EVENTS, json={"event": "console_output", "modelId": p2, "data": {}}),
            c.post(_UPLOAD, json={"modelId": p2, "filename": "best.pt"}),
        ]
        for r in denied:
            assert r.status_code == 403, (
                r.request.method,
                r.request.url.path,
                r.request.content[:200],
                r.text,
            )
        assert _alice_state(w) == before
        # Writing to p1 works.
        made = _ok(c.post("/v1/models", json={"meta": {"name": "ok"}, "project": "p1"}))["data"]["id"]
        _ok(c.post(f"/v1/models/{made}", **_metrics(0)))
        started = _ok(c.post(_EVENTS, **_plat("training_started", project="alice/p1", name="run")(w)))
        assert _ok(c.get(f"/v1/models/{started['modelId']}"))["data"]["project"] == "p1"
    with client(hub, w["keys"]["alice_p1"]) as n:
        assert n.post(f"{API}/datasets", json={"name": "d"}).status_code == 403
        r = n.put(f"{API}/datasets/{w['nat_ds']}/file", content=_dataset_zip("p"))
        assert r.status_code == 403, r.text
        assert n.get(f"{API}/datasets/{w['nat_ds']}").status_code == 200
