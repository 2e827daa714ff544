"""Every endpoint rejects bad input with a 4xx JSON error: status code AND error code."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from server_helpers import API, assert_error, client

from trainhub.protocol import (
    MAX_EPOCHS_PER_REQUEST,
    MAX_EVENTS_PER_REQUEST,
    MAX_JSON_BODY_BYTES,
    MAX_METRICS_PER_EPOCH,
)

if TYPE_CHECKING:
    from conftest import HubServer

MODEL = "badinput" + secrets.token_hex(4)
JSON = {"content-type": "application/json"}
M = f"{API}/models/{MODEL}"

# (method, path, request kwargs, status, code)
CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    # routing
    ("GET", f"{API}/nope", {}, 404, "not_found"),
    ("DELETE", f"{API}/models", {}, 405, "method_not_allowed"),
    ("PATCH", M, {}, 405, "method_not_allowed"),
    # projects
    ("POST", f"{API}/projects", {"content": b"{", "headers": JSON}, 400, "invalid_json"),
    ("POST", f"{API}/projects", {"json": {}}, 422, "validation_error"),
    ("POST", f"{API}/projects", {"json": {"name": "a/b"}}, 422, "validation_error"),
    ("POST", f"{API}/projects", {"json": {"name": 5}}, 422, "validation_error"),
    ("POST", f"{API}/projects", {"json": []}, 422, "validation_error"),
    # models
    ("POST", f"{API}/models", {"content": b"not json", "headers": JSON}, 400, "invalid_json"),
    ("POST", f"{API}/models", {"json": {"name": ""}}, 422, "validation_error"),
    ("POST", f"{API}/models", {"json": {"name": "x" * 201}}, 422, "validation_error"),
    ("POST", f"{API}/models", {"json": {"name": "x", "epochs": -1}}, 422, "validation_error"),
    ("POST", f"{API}/models", {"json": {"name": "x", "epochs": "ten"}}, 422, "validation_error"),
    ("POST", f"{API}/models", {"json": {"name": "x", "config": [1]}}, 422, "validation_error"),
    ("POST", f"{API}/models", {"content": b'{"name": "x"}'}, 422, "validation_error"),  # no content-type
    ("PUT", f"{API}/models/bad.id", {"json": {"name": "x"}}, 422, "validation_error"),
    ("PUT", f"{API}/models/{'a' * 65}", {"json": {"name": "x"}}, 422, "validation_error"),
    ("PUT", M, {"json": {"nam": "x"}}, 422, "validation_error"),
    ("GET", f"{API}/models/unknown", {}, 404, "model_not_found"),
    ("GET", f"{API}/models", {"params": {"limit": 0}}, 422, "validation_error"),
    ("GET", f"{API}/models", {"params": {"limit": "many"}}, 422, "validation_error"),
    # status
    ("POST", f"{M}/status", {"json": {"status": "exploded"}}, 422, "validation_error"),
    ("POST", f"{M}/status", {"json": {}}, 422, "validation_error"),
    (
        "POST",
        f"{M}/status",
        {"json": {"status": "done", "final_metrics": {"a": "x"}}},
        422,
        "validation_error",
    ),
    ("POST", f"{API}/models/unknown/status", {"json": {"status": "done"}}, 404, "model_not_found"),
    ("POST", f"{M}/status", {"content": b"[", "headers": JSON}, 400, "invalid_json"),
    # metrics
    ("POST", f"{M}/metrics", {"content": b"{", "headers": JSON}, 400, "invalid_json"),
    (
        "POST",
        f"{M}/metrics",
        {"json": {"epochs": [{"epoch": "one", "metrics": {}}]}},
        422,
        "validation_error",
    ),
    ("POST", f"{M}/metrics", {"json": {"epochs": [{"epoch": -1, "metrics": {}}]}}, 422, "validation_error"),
    (
        "POST",
        f"{M}/metrics",
        {"json": {"epochs": [{"epoch": 1, "metrics": {"a": "1"}}]}},
        422,
        "validation_error",
    ),
    (
        "POST",
        f"{M}/metrics",
        {"json": {"epochs": [{"epoch": 1, "metrics": {"a": True}}]}},
        422,
        "validation_error",
    ),
    (
        "POST",
        f"{M}/metrics",
        {"json": {"epochs": [{"epoch": 1, "metrics": {"": 1}}]}},
        422,
        "validation_error",
    ),
    ("POST", f"{M}/metrics", {"json": {"epochs": {}}}, 422, "validation_error"),
    ("POST", f"{API}/models/unknown/metrics", {"json": {"epochs": []}}, 404, "model_not_found"),
    (
        "POST",
        f"{M}/metrics",
        {"json": {"epochs": [{"epoch": i, "metrics": {}} for i in range(MAX_EPOCHS_PER_REQUEST + 1)]}},
        413,
        "payload_too_large",
    ),
    (
        "POST",
        f"{M}/metrics",
        {
            "json": {
                "epochs": [{"epoch": 0, "metrics": {f"m{i}": 1.0 for i in range(MAX_METRICS_PER_EPOCH + 1)}}]
            }
        },
        413,
        "payload_too_large",
    ),
    ("GET", f"{API}/models/unknown/metrics", {}, 404, "model_not_found"),
    ("GET", f"{M}/metrics/series", {}, 422, "validation_error"),
    ("GET", f"{API}/models/unknown/metrics/series", {"params": {"name": "a"}}, 404, "model_not_found"),
    # checkpoints
    ("PUT", f"{M}/checkpoints/middle", {"content": b"x"}, 422, "validation_error"),
    ("PUT", f"{M}/checkpoints/last", {"content": b"x", "params": {"epoch": "x"}}, 422, "validation_error"),
    (
        "PUT",
        f"{M}/checkpoints/last",
        {"content": b"x", "headers": {"x-trainhub-sha256": "zz"}},
        422,
        "validation_error",
    ),
    ("PUT", f"{API}/models/unknown/checkpoints/last", {"content": b"x"}, 404, "model_not_found"),
    ("GET", f"{API}/models/unknown/checkpoints", {}, 404, "model_not_found"),
    ("GET", f"{M}/checkpoints/best/download", {}, 404, "checkpoint_not_found"),
    ("GET", f"{M}/checkpoints/other/download", {}, 422, "validation_error"),
    ("GET", f"{API}/models/unknown/checkpoints/last/download", {}, 404, "model_not_found"),
    # heartbeat / stop
    ("POST", f"{M}/heartbeat", {"json": {}}, 422, "validation_error"),
    ("POST", f"{M}/heartbeat", {"json": {"agent": ["x"]}}, 422, "validation_error"),
    ("POST", f"{M}/heartbeat", {"content": b"{{", "headers": JSON}, 400, "invalid_json"),
    ("POST", f"{API}/models/unknown/heartbeat", {"json": {"agent": "a"}}, 404, "model_not_found"),
    ("POST", f"{API}/models/unknown/stop", {}, 404, "model_not_found"),
    # events
    ("POST", f"{API}/events", {"content": b"{", "headers": JSON}, 400, "invalid_json"),
    ("POST", f"{API}/events", {"json": {"events": [{"kind": "train"}]}}, 422, "validation_error"),
    (
        "POST",
        f"{API}/events",
        {"json": {"events": [{"kind": "", "install_id": "i"}]}},
        422,
        "validation_error",
    ),
    (
        "POST",
        f"{API}/events",
        {"json": {"events": [{"kind": "t", "install_id": "i", "versions": {"a": 1}}]}},
        422,
        "validation_error",
    ),
    (
        "POST",
        f"{API}/events",
        {"json": {"events": [{"kind": "t", "install_id": "i"}] * (MAX_EVENTS_PER_REQUEST + 1)}},
        413,
        "payload_too_large",
    ),
    ("DELETE", f"{API}/events/summary", {}, 405, "method_not_allowed"),
    # keys
    ("POST", f"{API}/keys", {"json": {"name": "x", "is_admin": "maybe"}}, 422, "validation_error"),
    ("POST", f"{API}/keys", {"content": b"{", "headers": JSON}, 400, "invalid_json"),
    ("DELETE", f"{API}/keys/unknown", {}, 404, "key_not_found"),
    # oversize JSON body, by Content-Length
    (
        "POST",
        f"{API}/events",
        {"content": b" " * (MAX_JSON_BODY_BYTES + 1), "headers": JSON},
        413,
        "payload_too_large",
    ),
]


@pytest.fixture(scope="module")
def api(hub_server_module: HubServer) -> Iterator[httpx.Client]:
    with client(hub_server_module) as c:
        assert c.put(f"{API}/models/{MODEL}", json={"name": "target"}).status_code in (200, 201)
        yield c


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    CASES,
    # Ids without the random model id, so every xdist worker collects the same names.
    ids=[f"{c[0]} {c[1].replace(MODEL, '<model>')[:60]} {c[4]}" for c in CASES],
)
def test_bad_input_gets_a_json_4xx(
    api: httpx.Client, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    assert_error(api.request(method, path, **kwargs), status, code)


def test_validation_message_names_the_field(api: httpx.Client) -> None:
    r = api.post(f"{M}/metrics", json={"epochs": [{"epoch": 1, "metrics": {"box": "x"}}]})
    assert "epochs.0.metrics.box" in r.json()["error"]["message"]


def test_chunked_json_body_over_the_cap_is_413(api: httpx.Client) -> None:
    def body() -> Iterator[bytes]:  # no Content-Length: the cap is enforced while reading
        chunk = b" " * (1024 * 1024)
        for _ in range(MAX_JSON_BODY_BYTES // len(chunk) + 1):
            yield chunk

    assert_error(api.post(f"{API}/events", content=body(), headers=JSON), 413, "payload_too_large")


def test_bad_input_leaves_the_model_untouched(api: httpx.Client) -> None:
    m = api.get(f"{API}/models/{MODEL}").json()
    assert m["status"] == "new" and m["last_epoch"] is None
