"""Chart data API: server-side downsampling (a million points come back as <= 1,500 keeping the min
and max), ETag polling, comparisons, and CSRF on cookie-authenticated posts."""

from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING

import httpx
from web_helpers import API, api, make_model, yolo_like

if TYPE_CHECKING:
    from conftest import HubServer

MILLION = 1_000_000
BATCH = 1_000  # MAX_EPOCHS_PER_REQUEST


def value(step: int) -> float:
    """A noisy decaying curve with one deep dip and one spike."""
    if step == 777_777:
        return -3.5
    if step == 123_456:
        return 9.25
    return math.exp(-step / 300_000) + 0.05 * math.sin(step * 0.37)


def test_a_million_point_series_is_returned_downsampled_keeping_min_and_max(hub_server: HubServer) -> None:
    with api(hub_server) as c:
        model_id = make_model(c, "long-run", {}, [])
        started = time.perf_counter()
        for lo in range(0, MILLION, BATCH):
            rows = [{"epoch": s, "metrics": {"train/loss": value(s)}} for s in range(lo, lo + BATCH)]
            r = c.post(f"{API}/models/{model_id}/metrics", json={"epochs": rows})
            assert r.status_code == 200, r.text
        print(f"\ningested {MILLION} points in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        r = c.get(f"{API}/models/{model_id}/charts/series", params={"name": "train/loss"})
        elapsed = time.perf_counter() - started
        print(f"one 1M-point series downsampled over HTTP in {elapsed * 1000:.1f} ms")
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["count"] == MILLION and data["downsampled"] is True
        assert 1_000 <= len(data["steps"]) <= 1_500
        assert len(data["values"]) == len(data["steps"])
        assert data["steps"] == sorted(set(data["steps"]))
        assert min(data["values"]) == -3.5 and max(data["values"]) == 9.25
        points = dict(zip(data["steps"], data["values"], strict=True))
        assert points[777_777] == -3.5 and points[123_456] == 9.25
        assert data["steps"][0] == 0 and data["steps"][-1] == MILLION - 1
        assert all(points[s] == value(s) for s in data["steps"][:50])  # real points, not averages

        charts = c.get(f"{API}/models/{model_id}/charts").json()
        series = charts["series"]["train/loss"]
        assert len(series["steps"]) <= 1_500 and min(series["values"]) == -3.5
        assert charts["groups"] == [{"id": "train", "title": "Train losses", "names": ["train/loss"]}]
        small = c.get(
            f"{API}/models/{model_id}/charts/series", params={"name": "train/loss", "max_points": 100}
        )
        assert len(small.json()["steps"]) <= 100 and max(small.json()["values"]) == 9.25


def test_charts_answer_304_until_a_new_epoch_arrives(hub_server: HubServer) -> None:
    with api(hub_server) as c:
        model_id = make_model(c, "run", {}, [yolo_like(i) for i in range(3)])
        first = c.get(f"{API}/models/{model_id}/charts")
        assert first.status_code == 200 and first.json()["last_step"] == 2
        etag = first.headers["etag"]
        assert c.get(f"{API}/models/{model_id}/charts", headers={"if-none-match": etag}).status_code == 304
        rows = [{"epoch": 3, "metrics": yolo_like(3)}]
        assert c.post(f"{API}/models/{model_id}/metrics", json={"epochs": rows}).status_code == 200
        again = c.get(f"{API}/models/{model_id}/charts", headers={"if-none-match": etag})
        assert again.status_code == 200 and again.json()["last_step"] == 3
        assert [g["id"] for g in again.json()["groups"]] == ["train", "val", "metrics-b", "lr"]


def test_chart_routes_validate_input(hub_server_module: HubServer) -> None:
    with api(hub_server_module) as c:
        assert c.get(f"{API}/models/nope/charts").json()["error"]["code"] == "model_not_found"
        model_id = make_model(c, "run", {}, [yolo_like(0)])
        r = c.get(f"{API}/models/{model_id}/charts", params={"max_points": 1})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
        unknown = c.get(f"{API}/models/{model_id}/charts/series", params={"name": "nope"}).json()
        assert unknown["steps"] == [] and unknown["count"] == 0
    assert httpx.get(f"{hub_server_module.url}{API}/models/{model_id}/charts").status_code == 401


def test_compare_endpoint_overlays_one_metric_and_lists_differing_args(hub_server_module: HubServer) -> None:
    with api(hub_server_module) as c:
        a = make_model(c, "a", {"imgsz": 640, "lr0": 0.01}, [yolo_like(i) for i in range(5)])
        b = make_model(c, "b", {"imgsz": 640, "lr0": 0.02, "cos_lr": True}, [yolo_like(i) for i in range(3)])
        r = c.get(f"{API}/compare", params={"ids": [a, b], "metric": "val/box_loss"})
        assert r.status_code == 200, r.text
        data = r.json()
    assert [m["id"] for m in data["models"]] == [a, b]
    assert data["metric"] == "val/box_loss"
    assert [len(s["steps"]) for s in data["series"]] == [5, 3]
    assert [row["key"] for row in data["args"]] == ["cos_lr", "lr0"]
    assert data["args"][0]["values"] == ["-", True]
    assert "metrics/mAP50-95(B)" in data["final"]["columns"]


def test_cookie_posts_need_the_sessions_csrf_token(hub_server: HubServer) -> None:
    with api(hub_server) as c:
        model_id = make_model(c, "run", {}, [yolo_like(0)])
    with httpx.Client(base_url=hub_server.url) as browser:
        browser.post("/login", data={"api_key": hub_server.api_key, "next": "/"})
        page = browser.get(f"/models/{model_id}").text
        match = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page)
        assert match is not None
        stop = f"{API}/models/{model_id}/stop"
        assert browser.post(stop).json()["error"]["code"] == "forbidden"
        assert browser.post(stop, headers={"x-trainhub-csrf": "0" * 64}).status_code == 403
        assert browser.get(f"{API}/models/{model_id}").json()["stop_requested"] is False
        r = browser.post(stop, headers={"x-trainhub-csrf": match.group(1)})
        assert r.status_code == 200 and r.json()["stop_requested"] is True
    # Without a cookie the token alone is worth nothing.
    assert (
        httpx.post(f"{hub_server.url}{stop}", headers={"x-trainhub-csrf": match.group(1)}).status_code == 401
    )
