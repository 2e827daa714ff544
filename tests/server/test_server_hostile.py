"""Hostile inputs: each gets a clear 4xx and leaves what is stored unchanged (docs/security.md)."""

from __future__ import annotations

import io
import secrets
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from server_helpers import API, assert_error, client

from trainhub.protocol import MAX_JSON_DEPTH
from trainhub.server.limits import json_body_problem

if TYPE_CHECKING:
    from conftest import HubServer

JSON = {"content-type": "application/json"}


def _zip(entries: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buf.getvalue()


GOOD_ZIP = _zip([("coco/data.yaml", b"names: {0: a}\n"), ("coco/images/a.jpg", b"x")])


@pytest.fixture(scope="module")
def api(hub_server_module: HubServer) -> Iterator[httpx.Client]:
    with client(hub_server_module) as c:
        yield c


@pytest.fixture(scope="module")
def model(api: httpx.Client) -> str:
    model_id = secrets.token_hex(10)
    r = api.put(f"{API}/models/{model_id}", json={"name": "target", "config": {"lr": 0.1}})
    assert r.status_code == 201, r.text
    first = {"epochs": [{"epoch": 0, "metrics": {"loss": 1.0}}]}
    r = api.post(f"{API}/models/{model_id}/metrics", json=first)
    assert r.status_code == 200, r.text
    return model_id


@pytest.fixture(scope="module")
def dataset(api: httpx.Client) -> dict[str, Any]:
    ds = api.post(f"{API}/datasets", json={"name": "hostile"}).json()
    r = api.put(f"{API}/datasets/{ds['id']}/file", content=GOOD_ZIP, params={"filename": "good.zip"})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _snapshot(api: httpx.Client, model: str) -> tuple[Any, ...]:
    return (
        api.get(f"{API}/models/{model}").json()["name"],
        api.get(f"{API}/models/{model}/metrics").json(),
        sorted(p["name"] for p in api.get(f"{API}/projects").json()),
    )


# (label, method, path template, raw body): every one is a 400 invalid_json.
HOSTILE_JSON: list[tuple[str, str, str, bytes]] = [
    ("nested arrays", "POST", "{m}/metrics", b"[" * 100_000 + b"]" * 100_000),
    ("nested objects", "POST", "{m}/metrics", b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
    (
        "nesting one level too deep in config",
        "PUT",
        "{m}",
        b'{"name": "x", "config": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}",
    ),
    ("invalid UTF-8 in a name", "POST", "{m}/metrics", b'{"epochs":[{"epoch":1,"metrics":{"\xff":1}}]}'),
    ("latin-1 body", "PUT", "{m}", '{"name": "caf\u00e9"}'.encode("latin-1")),
    ("lone surrogate", "POST", "/projects", b'{"name": "\\ud800"}'),
    ("NUL in a config value", "PUT", "{m}", b'{"name": "x", "config": {"a": "\\u0000"}}'),
    ("NUL in a metric name", "POST", "{m}/metrics", b'{"epochs":[{"epoch":1,"metrics":{"a\\u0000":1}}]}'),
]


@pytest.mark.parametrize(("label", "method", "path", "body"), HOSTILE_JSON, ids=[c[0] for c in HOSTILE_JSON])
def test_hostile_json_is_400_and_changes_nothing(
    api: httpx.Client, model: str, label: str, method: str, path: str, body: bytes
) -> None:
    before = _snapshot(api, model)
    url = API + path.format(m=f"/models/{model}")
    assert_error(api.request(method, url, content=body, headers=JSON), 400, "invalid_json")
    assert _snapshot(api, model) == before


def test_hostile_json_on_the_compat_apis_is_400_in_their_shape(hub_server_module: HubServer) -> None:
    with httpx.Client(base_url=hub_server_module.url, headers=hub_server_module.headers(), timeout=30) as c:
        r = c.post("/v1/models", content=b"[" * 10_000, headers=JSON)
        assert r.status_code == 400 and r.json()["success"] is False
        r = c.post("/api/projects", content=b'{"name": "\xff"}', headers=JSON)
        assert r.status_code == 400 and "UTF-8" in r.json()["error"]


def test_nesting_at_the_limit_is_accepted(api: httpx.Client, model: str) -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH - 2):  # the body and "config" are two levels
        deep = [deep]
    r = api.put(f"{API}/models/{model}", json={"name": "target", "config": {"deep": deep}})
    assert r.status_code == 200, r.text


def test_non_finite_metric_values_are_stored_as_null(api: httpx.Client, model: str) -> None:
    body = b'{"epochs":[{"epoch":7,"metrics":{"a":NaN,"b":Infinity,"c":-Infinity,"d":1e999,"e":2.5}}]}'
    r = api.post(f"{API}/models/{model}/metrics", content=body, headers=JSON)
    assert r.status_code == 200, r.text
    got = {e["epoch"]: e["metrics"] for e in api.get(f"{API}/models/{model}/metrics").json()}
    assert got[7] == {"a": None, "b": None, "c": None, "d": None, "e": 2.5}


def test_huge_integers_are_a_4xx(api: httpx.Client, model: str) -> None:
    before = _snapshot(api, model)
    for epoch in (b"1" + b"0" * 5_000, str(2**63).encode(), str(2**70).encode()):
        body = b'{"epochs":[{"epoch":' + epoch + b',"metrics":{"x":1}}]}'
        r = api.post(f"{API}/models/{model}/metrics", content=body, headers=JSON)
        assert 400 <= r.status_code < 500, (epoch[:20], r.status_code, r.text)
    assert _snapshot(api, model) == before


@pytest.mark.parametrize(
    "bad",
    [
        b"[" * 1000,
        b'{"a": "\\ud83d"}',
        b'{"a": "\\udc00 x"}',
        b'"\\u0000"',
        b"\xc3\x28",
        b"\xed\xa0\x80",  # a surrogate encoded as UTF-8 (invalid)
    ],
)
def test_json_body_problem_names_the_problem(bad: bytes) -> None:
    assert json_body_problem(bad) is not None


@pytest.mark.parametrize(
    "fine",
    [b'{"a": "\\ud83d\\ude00"}', b'{"a": "' + b"[" * 100 + b'"}', b"{", b""],
)
def test_json_body_problem_lets_good_and_merely_malformed_json_through(fine: bytes) -> None:
    assert json_body_problem(fine) is None  # malformed JSON is the parser's to report


# Zip members that would escape the folder they are unpacked in ("zip slip").
SLIP_NAMES = ["../evil.yaml", "a/../../evil.yaml", "/etc/evil.yaml", "..\\evil.yaml", "C:/evil.yaml"]


@pytest.mark.parametrize("name", SLIP_NAMES)
def test_zip_slip_dataset_is_refused_and_the_old_zip_kept(
    api: httpx.Client, dataset: dict[str, Any], name: str
) -> None:
    evil = _zip([("data.yaml", b"names: {0: a}\n"), (name, b"pwned")])
    r = api.put(f"{API}/datasets/{dataset['id']}/file", content=evil, params={"filename": "evil.zip"})
    assert_error(r, 422, "validation_error")
    assert "outside" in r.json()["error"]["message"]
    assert api.get(f"{API}/datasets/{dataset['id']}").json()["sha256"] == dataset["sha256"]


def test_zip_bomb_dataset_is_refused(api: httpx.Client, dataset: dict[str, Any]) -> None:
    zeros = b"\0" * (64 * 1024 * 1024)
    bomb = _zip([("data.yaml", b"names: {0: a}\n"), ("zeros.bin", zeros)], zipfile.ZIP_DEFLATED)
    assert len(bomb) < 1024 * 1024
    r = api.put(f"{API}/datasets/{dataset['id']}/file", content=bomb)
    assert_error(r, 422, "validation_error")
    assert api.get(f"{API}/datasets/{dataset['id']}").json()["sha256"] == dataset["sha256"]


def test_not_a_zip_is_refused(api: httpx.Client, dataset: dict[str, Any]) -> None:
    r = api.put(f"{API}/datasets/{dataset['id']}/file", content=b"PK\x03\x04 but not really a zip")
    assert_error(r, 422, "validation_error")
    assert api.get(f"{API}/datasets/{dataset['id']}").json()["sha256"] == dataset["sha256"]


@pytest.mark.parametrize("filename", ["../../../etc/passwd", "..\\..\\boot.ini", "/abs/x.zip", "a\x01b.zip"])
def test_traversal_file_names_are_reduced_to_a_safe_base_name(api: httpx.Client, filename: str) -> None:
    ds = api.post(f"{API}/datasets", json={"name": "names"}).json()
    r = api.put(f"{API}/datasets/{ds['id']}/file", content=GOOD_ZIP, params={"filename": filename})
    assert r.status_code == 200, r.text
    stored = r.json()["filename"]
    assert "/" not in stored and "\\" not in stored and ".." not in stored and "\x00" not in stored
    assert stored.endswith(".zip")


MALFORMED_MULTIPART: list[tuple[str, bytes, str]] = [
    ("no closing boundary", b'--xx\r\nContent-Disposition: form-data; name="a"\r\n\r\nfoo', "boundary=xx"),
    ("not multipart at all", b"garbage", ""),
    ("garbage after boundary", b"--xx\r\n\x00\x01\x02 no headers\r\n\r\n--xx--\r\n", "boundary=xx"),
    (
        "two file parts",
        b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.pt"\r\n\r\nAAAA\r\n'
        b'--xx\r\nContent-Disposition: form-data; name="file"; filename="../../b.pt"\r\n\r\nBBBB\r\n'
        b"--xx--\r\n",
        "boundary=xx",
    ),
]


@pytest.mark.parametrize(
    ("label", "body", "params"), MALFORMED_MULTIPART, ids=[c[0] for c in MALFORMED_MULTIPART]
)
def test_malformed_multipart_is_400_and_stores_no_checkpoint(
    hub_server_module: HubServer, api: httpx.Client, model: str, label: str, body: bytes, params: str
) -> None:
    ctype = "multipart/form-data" + (f"; {params}" if params else "")
    with httpx.Client(base_url=hub_server_module.url, headers=hub_server_module.headers(), timeout=30) as c:
        r = c.post(f"/v1/models/{model}/upload", content=body, headers={"content-type": ctype})
    assert r.status_code == 400, r.text
    assert r.json()["success"] is False
    assert api.get(f"{API}/models/{model}/checkpoints").json() == []


@pytest.mark.parametrize(
    "url",
    [
        f"{API}/datasets?after=a%00b",
        f"{API}/compare?ids=x%00&metric=a",
        "/v1/models?last_doc_id=%00",
        f"{API}/models/a%00b",
    ],
)
def test_a_nul_in_the_url_is_400(hub_server_module: HubServer, url: str) -> None:
    # PostgreSQL cannot hold NUL in text: it must never reach a query (it was a 500 there).
    r = httpx.get(f"{hub_server_module.url}{url}", headers=hub_server_module.headers(), timeout=30)
    assert r.status_code == 400, r.text
