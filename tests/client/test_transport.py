"""One HTTP attempt: results instead of exceptions, auth header, error mapping."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from trainhub.client.errors import AuthError, PermanentError, TransientError, UnreachableError
from trainhub.client.transport import Transport


def transport(handler: object) -> Transport:
    return Transport("http://hub.test", "ul_k", transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_ok_result_with_json_body_and_bearer_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"a": 1})

    result = transport(handler).request("GET", "/api/v1/models")
    assert result.ok and result.body == {"a": 1} and result.exception() is None
    assert seen[0].headers["authorization"] == "Bearer ul_k"


def test_the_client_is_reused() -> None:
    t = transport(lambda r: httpx.Response(204))
    t.request("GET", "/a")
    first = t._client
    t.request("GET", "/b")
    assert t._client is first


def test_error_reply_maps_code_message_and_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            headers={"retry-after": "3"},
            json={"error": {"code": "rate_limited", "message": "slow down"}},
        )

    result = transport(handler).request("POST", "/x", json={})
    exc = result.exception()
    assert isinstance(exc, TransientError)
    assert (exc.status, exc.code, exc.message) == (429, "rate_limited", "slow down")
    assert result.retry_after == "3"


def test_4xx_is_permanent_and_401_is_auth() -> None:
    assert isinstance(
        transport(lambda r: httpx.Response(422)).request("GET", "/").exception(), PermanentError
    )
    assert isinstance(transport(lambda r: httpx.Response(401)).request("GET", "/").exception(), AuthError)


def test_connection_error_and_timeout_are_results() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    result = transport(refused).request("GET", "/")
    assert (result.status, result.error) == (None, "connection")
    assert isinstance(result.exception(), UnreachableError)
    assert transport(slow).request("GET", "/").error == "timeout"


def test_a_real_refused_connection_is_a_result() -> None:
    result = Transport("http://127.0.0.1:9", timeout=2).request("GET", "/")
    assert result.status is None and result.error in ("connection", "timeout")


def test_real_connections_set_tcp_nodelay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers and body go out in two writes: with Nagle on, the body could wait for a delayed ACK.
    httpcore sets TCP_NODELAY on every connection it opens; this keeps an eye on that."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sockets: list[socket.socket] = []
    real_setsockopt = socket.socket.setsockopt

    def recording(self: socket.socket, *args: Any) -> None:
        sockets.append(self)
        real_setsockopt(self, *args)

    monkeypatch.setattr(socket.socket, "setsockopt", recording)
    try:
        t = Transport(f"http://127.0.0.1:{server.server_address[1]}", timeout=10)
        assert t.request("GET", "/").ok
        client_sockets = [s for s in sockets if s.fileno() != -1]
        assert client_sockets, "no socket option was set on the client's connection"
        assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in client_sockets)
        t.close()
    finally:
        server.shutdown()
        server.server_close()


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass
