"""Projects and models: create-or-get, server-made ids, listing, status, heartbeat, stop."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import HubServer
from server_helpers import API, client, new_model


def test_put_creates_then_gets_the_same_model(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        r1 = c.put(f"{API}/models/run_1-a", json={"name": "first", "epochs": 10, "task": "detect"})
        r2 = c.put(f"{API}/models/run_1-a", json={"name": "other name"})
    assert r1.status_code == 201 and r2.status_code == 200
    assert r2.json()["name"] == "first"
    m = r1.json()
    assert m["project"] == "default" and m["status"] == "new" and m["epochs"] == 10
    assert m["url"] == f"{hub_server.url}/models/run_1-a"


def test_post_makes_a_20_hex_id(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        r = c.post(f"{API}/models", json={"name": "x", "project": "p1", "config": {"lr0": 0.01}})
        assert r.status_code == 201
        m = r.json()
        assert re.fullmatch(r"[0-9a-f]{20}", m["id"])
        assert c.get(f"{API}/models/{m['id']}").json()["config"] == {"lr0": 0.01}


def test_projects_are_created_on_demand_and_idempotent(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        new_model(c, project="alpha")
        assert c.post(f"{API}/projects", json={"name": "beta"}).status_code == 201
        assert c.post(f"{API}/projects", json={"name": "beta"}).status_code == 201
        projects = {p["name"]: p["model_count"] for p in c.get(f"{API}/projects").json()}
    assert projects == {"alpha": 1, "beta": 0}


def test_list_models_newest_first_with_filters(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        a = new_model(c, name="yolo small", project="p")
        b = new_model(c, name="yolo large", project="q")
        d = new_model(c, name="resnet", project="p")
        assert [m["id"] for m in c.get(f"{API}/models").json()] == [d["id"], b["id"], a["id"]]
        assert [m["id"] for m in c.get(f"{API}/models", params={"project": "p"}).json()] == [d["id"], a["id"]]
        assert [m["id"] for m in c.get(f"{API}/models", params={"q": "YOLO"}).json()] == [b["id"], a["id"]]
        assert len(c.get(f"{API}/models", params={"limit": 1}).json()) == 1
        assert c.get(f"{API}/models", params={"q": "%"}).json() == []


def test_heartbeat_agent_id_is_stable_and_moves_to_training(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
        r1 = c.post(f"{API}/models/{m['id']}/heartbeat", json={"agent": "python-3.11-linux"})
        r2 = c.post(
            f"{API}/models/{m['id']}/heartbeat",
            json={"agent": "python-3.11-linux", "agent_id": r1.json()["agent_id"]},
        )
        assert r1.status_code == r2.status_code == 200
        assert r1.json()["agent_id"] == r2.json()["agent_id"]
        assert r1.json() == {"agent_id": r1.json()["agent_id"], "status": "training", "stop_requested": False}
        got = c.get(f"{API}/models/{m['id']}").json()
    assert got["status"] == "training" and got["agent"] == "python-3.11-linux" and got["last_heartbeat_at"]


def test_stop_is_reported_by_the_next_heartbeat(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
        assert c.post(f"{API}/models/{m['id']}/stop").json()["stop_requested"] is True
        assert (
            c.post(f"{API}/models/{m['id']}/heartbeat", json={"agent": "a"}).json()["stop_requested"] is True
        )


def test_resuming_a_stopped_model_clears_the_stop_request(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
        c.post(f"{API}/models/{m['id']}/stop").raise_for_status()
        resumed = c.post(f"{API}/models/{m['id']}/status", json={"status": "training"}).json()
        assert resumed["stop_requested"] is False
        beat = c.post(f"{API}/models/{m['id']}/heartbeat", json={"agent": "a"}).json()
        assert beat["stop_requested"] is False


def test_status_update_sets_final_metrics(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
        r = c.post(
            f"{API}/models/{m['id']}/status",
            json={"status": "done", "final_metrics": {"metrics/mAP50(B)": 0.5, "x": None}},
        )
    assert r.status_code == 200
    assert r.json()["status"] == "done"
    assert r.json()["final_metrics"] == {"metrics/mAP50(B)": 0.5, "x": None}


def test_data_survives_a_restart_on_the_same_data_dir(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
    assert hub_server.stop() == 0  # SIGTERM is a clean exit
    hub_server.start()
    with client(hub_server) as c:
        assert c.get(f"{API}/models/{m['id']}").json()["id"] == m["id"]
