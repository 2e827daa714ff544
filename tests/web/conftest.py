"""Fixtures of the web UI tests: real headless Chromium (Debian's, driven by Playwright) on a real hub.

* ``browser``: one Chromium per test module, ``/usr/bin/chromium`` (``TRAINHUB_CHROMIUM`` overrides);
  Playwright never downloads a browser. Without Chromium the browser tests are skipped locally
  and fail in CI (``CI`` set), where ``scripts/test.sh`` installs it.
* ``shots``: the directory screenshots go to (``TRAINHUB_UI_ARTIFACTS``, else a pytest tmp dir);
  its path is printed, so a CI job can keep it as an artifact.
* ``open_page(server, width=1280, height=900, dark=False, user=None)``: a logged-in page in a fresh
  context: with the server's admin key, or with ``user=(name, password)`` through the password form.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import HubServer

CHROMIUM = os.environ.get("TRAINHUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Longest wait for a DOM condition (the page polls every 2 s).
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for the module."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} not found (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots are saved (kept as test artifacts)."""
    env = os.environ.get("TRAINHUB_UI_ARTIFACTS")
    path = Path(env) if env else tmp_path_factory.mktemp("ui-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nUI screenshots: {path}")
    return path


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """``open_page(server, width=1280, height=900, dark=False, user=None)``: a logged-in page
    (closed at teardown)."""
    contexts: list[Any] = []

    def make(
        server: HubServer,
        width: int = 1280,
        height: int = 900,
        dark: bool = False,
        user: tuple[str, str] | None = None,
    ) -> Any:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme="dark" if dark else "light",
            accept_downloads=True,
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{server.url}/login")
        if user is None:
            page.fill("#api_key", server.api_key or "")
            submit = "#key-submit"
        else:
            page.fill("#username", user[0])
            page.fill("#password", user[1])
            submit = "#password-submit"
        with page.expect_navigation():
            page.click(submit)
        return page

    yield make
    for context in contexts:
        context.close()
