"""Secure defaults: loopback by default, a warning on a public plain-HTTP bind, security headers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx
import pytest
from server_helpers import API, client, new_model

from trainhub.cli import build_parser
from trainhub.server.commands import RedactAccessLog, plain_http_warning, redact_path
from trainhub.server.headers import PAGE_CSP
from trainhub.server.settings import ServerSettings

if TYPE_CHECKING:
    from conftest import HubServer

SHA = "a" * 64


def test_the_server_listens_on_loopback_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINHUB_HOST", raising=False)
    assert ServerSettings().host == "127.0.0.1"
    args = build_parser().parse_args(["serve"])
    assert args.host is None  # None: the setting (127.0.0.1) decides


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "hub.example.com"])
def test_a_public_bind_without_tls_warns(host: str) -> None:
    warning = plain_http_warning(host, None)
    assert warning is not None and "plain HTTP" in warning and host in warning
    assert plain_http_warning(host, "http://hub.example.com") is not None


@pytest.mark.parametrize(
    ("host", "public_url"),
    [("127.0.0.1", None), ("::1", None), ("localhost", None), ("0.0.0.0", "https://hub.example.com")],
)
def test_loopback_or_a_tls_proxy_does_not_warn(host: str, public_url: str | None) -> None:
    assert plain_http_warning(host, public_url) is None


def test_a_loopback_server_prints_no_warning(hub_server_module: HubServer) -> None:
    assert not any("WARNING" in line for line in hub_server_module.output)


def _assert_common(r: httpx.Response) -> None:
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "same-origin"


def test_pages_carry_a_strict_content_security_policy(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
    with httpx.Client(base_url=hub_server.url) as browser:
        login = browser.get("/login")
        _assert_common(login)
        assert login.headers["content-security-policy"] == PAGE_CSP
        assert "frame-ancestors 'none'" in PAGE_CSP and "script-src 'self';" in PAGE_CSP
        browser.post("/login", data={"api_key": hub_server.api_key, "next": "/"})
        for path in ("/", f"/models/{m['id']}", "/compare"):
            r = browser.get(path)
            assert r.status_code == 200, (path, r.status_code)
            _assert_common(r)
            assert r.headers["content-security-policy"] == PAGE_CSP
            assert "<script>" not in r.text  # no inline script for the CSP to block


def test_api_replies_and_errors_carry_the_headers(hub_server_module: HubServer) -> None:
    with client(hub_server_module) as c:
        for r in (
            c.get(f"{API}/models"),
            c.get(f"{API}/models/nope"),
            httpx.get(f"{hub_server_module.url}{API}/models"),
        ):
            _assert_common(r)
            assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/dl/1790000000/abcDEF123_-/" + SHA + "/m1/best.pt", "/dl/1790000000/***/" + SHA + "/m1/best.pt"),
        ("/up/1790000000/sigsig/u1/last.pt", "/up/1790000000/***/u1/last.pt"),
        ("/api/v1/models?api_key=ul_secret&limit=5", "/api/v1/models?api_key=***&limit=5"),
        ("/api/v1/models/abc/metrics", "/api/v1/models/abc/metrics"),
    ],
)
def test_access_log_lines_hide_signatures_and_keys(path: str, shown: str) -> None:
    assert redact_path(path) == shown
    args = ("1.2.3.4:5", "GET", path, "1.1", 200)
    record = logging.LogRecord("uvicorn.access", 20, "", 0, '%s - "%s %s HTTP/%s" %d', args, None)
    RedactAccessLog().filter(record)
    assert record.getMessage() == f'1.2.3.4:5 - "GET {shown} HTTP/1.1" 200'
