"""Web pages: login with a key, the model list, a model's page."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from server_helpers import API, client, new_model

if TYPE_CHECKING:
    from conftest import HubServer


def test_pages_redirect_to_login_without_a_session(hub_server_module: HubServer) -> None:
    r = httpx.get(f"{hub_server_module.url}/models/abc")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fmodels%2Fabc"
    assert "API key" in httpx.get(f"{hub_server_module.url}/login").text


def test_a_bad_key_does_not_log_in(hub_server_module: HubServer) -> None:
    r = httpx.post(f"{hub_server_module.url}/login", data={"api_key": "ul_" + "0" * 40, "next": "/"})
    assert r.status_code == 401 and "not valid" in r.text and "set-cookie" not in r.headers


def test_login_then_model_page_shows_epochs_and_checkpoints(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c, name="my-run", epochs=5)
        epochs = [
            {"epoch": i, "metrics": {"train/box_loss": 1.0 / (i + 1), "metrics/mAP50(B)": 0.1 * i}}
            for i in range(3)
        ]
        c.post(f"{API}/models/{m['id']}/metrics", json={"epochs": epochs})
        c.put(f"{API}/models/{m['id']}/checkpoints/last", params={"epoch": 2}, content=b"weights")

    with httpx.Client(base_url=hub_server.url) as browser:
        r = browser.post("/login", data={"api_key": hub_server.api_key, "next": f"/models/{m['id']}"})
        assert r.status_code == 303 and r.headers["location"] == f"/models/{m['id']}"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        page = browser.get(f"/models/{m['id']}")
        assert page.status_code == 200
        html = page.text
        assert "my-run" in html and "epoch 2 of 5" in html
        assert html.count('class="epoch-row"') == 3
        assert "metrics/mAP50(B)" in html and "train/box_loss" in html
        link = f"/api/v1/models/{m['id']}/checkpoints/last/download"
        assert link in html
        # The session cookie works for GETs on the API, so the download link works from the page.
        assert browser.get(link).content == b"weights"
        assert m["id"] in browser.get("/").text
        assert browser.post("/logout").status_code == 303
        assert browser.get(f"/models/{m['id']}").status_code == 303


def test_login_never_redirects_off_site(hub_server_module: HubServer) -> None:
    r = httpx.post(
        f"{hub_server_module.url}/login",
        data={"api_key": hub_server_module.api_key, "next": "//evil.example/x"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
