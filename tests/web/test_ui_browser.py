"""The web UI in real headless Chromium, against a real hub with a run streaming into it.

Every wait is on a DOM condition with a timeout (the page polls every 2 s); screenshots of each
page at desktop and phone widths, light and dark, go to the ``shots`` directory.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from web_helpers import API, TrainingLoop, api, make_model, sha256_file, yolo_like

from trainhub import HubSession

if TYPE_CHECKING:
    from conftest import HubServer

PHONE = {"width": 390, "height": 844}
CHART_LAST_STEP = "document.querySelector('#chart-train .chart-body')?.dataset.lastStep"


def wait_js(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Poll a JS expression until truthy (``page.evaluate`` runs outside the page's CSP, which
    forbids the string eval that ``page.wait_for_function`` needs)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(50)


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def shoot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


@pytest.fixture
def session(hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubSession:
    monkeypatch.setenv("TRAINHUB_EVENTS", "0")
    return HubSession(
        hub_server.url,
        hub_server.api_key,
        project="ui",
        name="live-run",
        epochs=300,
        task="detect",
        config={"model": "yolo11n.yaml", "imgsz": 640, "batch": 16, "lr0": 0.01, "epochs": 300},
        rate_limits={"heartbeat": 0.2, "metrics": 0.0},
        spool_dir=tmp_path / "spool",
    )


def test_model_page_charts_a_streaming_run_live_stops_it_and_downloads_the_best_checkpoint(
    hub_server: HubServer,
    session: HubSession,
    open_page: Callable[..., Any],
    shots: Path,
    tmp_path: Path,
) -> None:
    for epoch in range(3):
        session.queue_metrics(epoch, yolo_like(epoch))
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"pretend torch weights " * 5000)
    session.upload_model(2, weights, is_best=True, map=0.55)
    assert session.flush(20)

    page = open_page(hub_server)
    page.goto(session.model_url)
    wait_js(page, f"{CHART_LAST_STEP} === '2'")
    assert page.locator(".chart-card").count() >= 4  # train, val, metrics (B), lr
    page.evaluate("window.__sameDocument = 42")  # gone if the page reloads

    # A new epoch arrives while the page is open: the chart and the table grow without a reload.
    loop = TrainingLoop(session, start=3, max_epochs=300, epoch_seconds=0.5).start()
    wait_js(page, f"Number({CHART_LAST_STEP}) >= 3")
    wait_js(page, "document.querySelectorAll('#epoch-table tr.epoch-row').length >= 4")
    assert page.evaluate("window.__sameDocument") == 42
    assert page.locator("#model-status").inner_text() == "training"
    assert "of 300" in page.locator("#progress").inner_text()
    shoot(page, shots, "model-desktop-light-training")

    # The best checkpoint downloads from the page, byte for byte.
    best_row = page.locator("tr[data-kind=best]")
    assert best_row.locator("[data-sha256]").get_attribute("data-sha256") == sha256_file(weights)
    with page.expect_download() as info:
        best_row.locator("a.download").click()
    assert sha256_file(info.value.path()) == sha256_file(weights)

    # Stop: the button posts with the session cookie + CSRF token; the loop sees it in a heartbeat.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#stop-button")
    wait_js(page, "document.querySelector('#model-status')?.textContent === 'cancelled'")
    loop.join(30)
    assert loop.stopped_at is not None and loop.stopped_at < 300
    assert page.evaluate("window.__sameDocument") == 42
    with api(hub_server) as c:
        model = c.get(f"{API}/models/{session.model_id}").json()
    assert model["status"] == "cancelled" and model["stop_requested"] is True
    assert page.locator("#stop-button").count() == 0
    shoot(page, shots, "model-desktop-light-stopped")

    for dark in (False, True):
        phone = open_page(hub_server, dark=dark, **PHONE)
        phone.goto(session.model_url)
        wait_js(phone, f"Number({CHART_LAST_STEP}) >= 3")
        assert no_horizontal_scroll(phone)
        shoot(phone, shots, f"model-phone-{'dark' if dark else 'light'}")
    dark_desktop = open_page(hub_server, dark=True)
    dark_desktop.goto(session.model_url)
    wait_js(dark_desktop, f"Number({CHART_LAST_STEP}) >= 3")
    background = dark_desktop.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 21, 28)", background  # the dark palette is in use
    shoot(dark_desktop, shots, "model-desktop-dark")


def test_compare_two_runs_overlays_a_metric_and_lists_final_metrics_and_differing_args(
    hub_server: HubServer, open_page: Callable[..., Any], shots: Path
) -> None:
    with api(hub_server) as c:
        a = make_model(c, "exp-a", {"imgsz": 640, "lr0": 0.01}, [yolo_like(i) for i in range(12)])
        b = make_model(c, "exp-b", {"imgsz": 640, "lr0": 0.002}, [yolo_like(i * 2) for i in range(8)])
        make_model(c, "other", {"imgsz": 320}, [yolo_like(0)])
        final = {"final_metrics": {"metrics/mAP50-95(B)": 0.61, "metrics/mAP50(B)": 0.8}, "status": "done"}
        assert c.post(f"{API}/models/{a}/status", json=final).status_code == 200

    page = open_page(hub_server)
    assert page.locator("li.run").count() == 3
    page.fill("input[name=q]", "exp-")
    with page.expect_navigation():
        page.press("input[name=q]", "Enter")
    assert page.locator("li.run").count() == 2
    assert page.locator(f"li.run[data-model-id='{a}'] .status").inner_text() == "done"
    shoot(page, shots, "home-desktop-light")
    page.check(f"input[name=ids][value='{a}']")
    page.check(f"input[name=ids][value='{b}']")
    with page.expect_navigation():
        page.click("#compare-selected")

    page.wait_for_selector("#compare-chart path.line")
    assert page.locator("#compare-chart path.line").count() == 2
    assert page.locator("#metric").input_value() == "metrics/mAP50-95(B)"
    rows = page.locator("#final-table tbody tr")
    assert rows.count() == 2 and "0.61" in rows.nth(0).inner_text() + rows.nth(1).inner_text()
    args = page.locator("#args-table").inner_text()
    assert "lr0" in args and "imgsz" not in args
    shoot(page, shots, "compare-desktop-light")

    # Another metric: the form reloads the comparison with that metric overlaid.
    with page.expect_navigation():
        page.select_option("#metric", "train/box_loss")
    page.wait_for_selector("#compare-chart path.line")
    assert page.locator("#compare-chart").get_attribute("data-metric") == "train/box_loss"
    assert page.locator("#compare-chart").get_attribute("data-last-step") == "11"

    for dark in (False, True):
        phone = open_page(hub_server, dark=dark, **PHONE)
        for path, name in ((f"/compare?ids={a}&ids={b}", "compare"), ("/", "home")):
            phone.goto(hub_server.url + path)
            assert no_horizontal_scroll(phone), path
            shoot(phone, shots, f"{name}-phone-{'dark' if dark else 'light'}")


def test_without_a_session_every_page_sends_the_browser_to_login(hub_server: HubServer, browser: Any) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        for path in ("/", "/compare", "/models/abc"):
            page.goto(hub_server.url + path)
            assert page.url.startswith(f"{hub_server.url}/login"), path
            assert page.locator("#api_key").count() == 1
            assert page.locator("#username").count() == 1 and page.locator("#password").count() == 1
    finally:
        context.close()


def test_a_user_logs_in_with_a_password_and_sees_only_their_own_models(
    hub_server: HubServer, browser: Any, open_page: Callable[..., Any], shots: Path
) -> None:
    with api(hub_server) as admin:
        keys = {}
        for user in ("alice", "bob"):
            r = admin.post(f"{API}/users", json={"name": user, "password": f"{user}-password-1"})
            assert r.status_code == 201, r.text
            keys[user] = admin.post(f"{API}/keys", json={"name": user, "user": user}).json()["key"]
    with httpx.Client(base_url=hub_server.url, headers=hub_server.headers(keys["alice"])) as alice:
        mine = make_model(alice, "alice-run", {"imgsz": 640}, [yolo_like(i) for i in range(3)])
    with httpx.Client(base_url=hub_server.url, headers=hub_server.headers(keys["bob"])) as bob:
        theirs = secrets.token_hex(10)
        assert bob.put(f"{API}/models/{theirs}", json={"name": "bob-run"}).status_code == 201

    # A wrong password: the form again, with the error, and no session.
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{hub_server.url}/login")
        page.fill("#username", "alice")
        page.fill("#password", "not-the-password")
        with page.expect_navigation():
            page.click("#password-submit")
        assert "Wrong user name or password" in page.locator("#login-error").inner_text()
        assert page.locator("#username").input_value() == "alice"
        assert not any(c["name"] == "trainhub_session" for c in context.cookies())
        shoot(page, shots, "login-failed-desktop-light")
    finally:
        context.close()

    page = open_page(hub_server, user=("alice", "alice-password-1"))
    assert page.url == f"{hub_server.url}/"
    assert page.locator("#who").inner_text().startswith("alice")
    assert page.locator("li.run").count() == 1
    assert page.locator(f"li.run[data-model-id='{mine}']").count() == 1
    page.click(f"li.run[data-model-id='{mine}'] a.run-name")
    page.wait_for_selector("#stop-button")
    wait_js(page, f"{CHART_LAST_STEP} === '2'")
    response = page.goto(f"{hub_server.url}/models/{theirs}")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    assert "bob-run" not in page.content()
