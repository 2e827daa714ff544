"""One HTTP attempt: results instead of exceptions, auth header, error mapping."""

from __future__ import annotations

import httpx

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
