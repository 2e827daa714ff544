"""Chunked upload sessions against the real server: create -> parts -> status -> complete / abort."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from server_helpers import API, assert_error, client, new_model, sha256

from trainhub.protocol import MAX_UPLOAD_PARTS, MIN_PART_SIZE, upload_path

if TYPE_CHECKING:
    from conftest import HubServer

PART = MIN_PART_SIZE  # 5 MiB, the smallest part the protocol allows


def _data(parts: float) -> bytes:
    return os.urandom(int(parts * PART))


def _create(c: httpx.Client, model_id: str, data: bytes, **extra: Any) -> httpx.Response:
    body = {"kind": "last", "size": len(data), "sha256": sha256(data), "part_size": PART, "epoch": 2, **extra}
    return c.post(upload_path(model_id), json=body)


def _put(c: httpx.Client, model_id: str, upload_id: str, n: int, data: bytes) -> httpx.Response:
    body = data[(n - 1) * PART : n * PART]
    return c.put(f"{upload_path(model_id, upload_id)}/parts/{n}", content=body)


def _multipart_dirs(server: HubServer) -> list[str]:
    # Uploads in progress on any backend: multipart/ dirs, or S3 multipart uploads and tmp/ keys.
    return server.instance.temp_objects()


def test_parts_in_any_order_then_complete_publishes_the_checkpoint(hub_server: HubServer) -> None:
    data = _data(2.5)
    with client(hub_server) as c:
        m = new_model(c)
        r = _create(c, m["id"], data, is_best=True, map=0.5)
        assert r.status_code == 201, r.text
        up = r.json()
        assert (up["state"], up["part_count"], up["parts"], up["already_present"]) == ("open", 3, [], False)
        for n in (3, 1, 2):
            r = _put(c, m["id"], up["upload_id"], n, data)
            assert r.status_code == 200, r.text
            assert r.json() == {"number": n, "size": min(PART, len(data) - (n - 1) * PART)}
        # Nothing is visible before complete.
        assert c.get(f"{API}/models/{m['id']}/checkpoints").json() == []
        status = c.get(upload_path(m["id"], up["upload_id"])).json()
        assert status["parts"] == [1, 2, 3] and status["bytes_received"] == len(data)
        r = c.post(f"{upload_path(m['id'], up['upload_id'])}/complete")
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["state"] == "complete"
        assert done["checkpoint"]["sha256"] == sha256(data) and done["checkpoint"]["epoch"] == 2
        kinds = {cp["kind"] for cp in c.get(f"{API}/models/{m['id']}/checkpoints").json()}
        downloaded = c.get(done["checkpoint"]["download_url"]).content
        again = c.post(f"{upload_path(m['id'], up['upload_id'])}/complete")  # the reply was lost: ask again
    assert kinds == {"last", "best"}
    assert sha256(downloaded) == sha256(data)
    assert again.status_code == 200 and again.json()["checkpoint"]["sha256"] == sha256(data)
    assert hub_server.instance.temp_objects() == []


def test_a_resent_part_replaces_the_stored_one_and_is_counted(hub_server: HubServer) -> None:
    data = _data(2)
    with client(hub_server) as c:
        m = new_model(c)
        up = _create(c, m["id"], data).json()
        bad = bytearray(data)
        bad[10] ^= 0xFF
        assert _put(c, m["id"], up["upload_id"], 1, bytes(bad)).status_code == 200
        assert _put(c, m["id"], up["upload_id"], 1, data).status_code == 200  # replaces the bad bytes
        assert _put(c, m["id"], up["upload_id"], 2, data).status_code == 200
        status = c.get(upload_path(m["id"], up["upload_id"])).json()
        r = c.post(f"{upload_path(m['id'], up['upload_id'])}/complete")
    assert status["bytes_received"] == 3 * PART
    assert r.status_code == 200, r.text
    assert r.json()["checkpoint"]["sha256"] == sha256(data)


def test_identical_content_is_stored_once_and_the_second_upload_sends_nothing(hub_server: HubServer) -> None:
    data = _data(1.2)
    with client(hub_server) as c:
        m1, m2 = new_model(c), new_model(c)
        up = _create(c, m1["id"], data).json()
        for n in (1, 2):
            _put(c, m1["id"], up["upload_id"], n, data)
        assert c.post(f"{upload_path(m1['id'], up['upload_id'])}/complete").status_code == 200
        r = _create(c, m2["id"], data, kind="final", map=0.7)
        model2 = c.get(f"{API}/models/{m2['id']}").json()
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["already_present"] is True and second["state"] == "complete"
    assert second["checkpoint"]["sha256"] == sha256(data) and second["bytes_received"] == 0
    assert model2["status"] == "done"  # a final upload marks the model done, even when deduplicated
    blobs = hub_server.instance.blobs()
    assert len(blobs) == 1


def test_create_of_the_same_file_resumes_the_open_session(hub_server: HubServer) -> None:
    data = _data(2)
    with client(hub_server) as c:
        m = new_model(c)
        first = _create(c, m["id"], data).json()
        _put(c, m["id"], first["upload_id"], 1, data)
        r = _create(c, m["id"], data, epoch=3)  # a client that lost the upload id
    assert r.status_code == 200
    assert r.json()["upload_id"] == first["upload_id"] and r.json()["parts"] == [1]


def test_abort_deletes_the_parts_and_closes_the_session(hub_server: HubServer) -> None:
    data = _data(1.5)
    with client(hub_server) as c:
        m = new_model(c)
        up = _create(c, m["id"], data).json()
        _put(c, m["id"], up["upload_id"], 1, data)
        assert c.delete(upload_path(m["id"], up["upload_id"])).status_code == 204
        assert c.delete(upload_path(m["id"], up["upload_id"])).status_code == 204  # idempotent
        late = _put(c, m["id"], up["upload_id"], 2, data)
        status = c.get(upload_path(m["id"], up["upload_id"])).json()
    assert_error(late, 409, "upload_not_open")
    assert status["state"] == "aborted" and status["parts"] == []
    assert hub_server.instance.temp_objects() == []


# -- bad input: JSON 4xx with a stable code, never a 500 ----------------------------------------------


@pytest.fixture(scope="module")
def session(hub_server_module: HubServer) -> dict[str, Any]:
    """A model and an open 2-part session on the module's server."""
    data = _data(1.5)
    with client(hub_server_module) as c:
        m = new_model(c)
        up = _create(c, m["id"], data).json()
    return {"model": m["id"], "upload": up["upload_id"], "data": data}


def test_unknown_upload_id_is_404(hub_server_module: HubServer, session: dict[str, Any]) -> None:
    path = upload_path(session["model"], "0" * 32)
    with client(hub_server_module) as c:
        for r in (
            c.get(path),
            c.put(f"{path}/parts/1", content=b"x"),
            c.post(f"{path}/complete"),
            c.delete(path),
            c.get(upload_path(session["model"], "not-an-id")),
        ):
            assert_error(r, 404, "upload_not_found")


def test_an_upload_of_another_model_is_404(hub_server_module: HubServer, session: dict[str, Any]) -> None:
    with client(hub_server_module) as c:
        other = new_model(c)
        assert_error(c.get(upload_path(other["id"], session["upload"])), 404, "upload_not_found")
        assert_error(c.get(upload_path("nope", session["upload"])), 404, "model_not_found")


@pytest.mark.parametrize("n", [0, 3, -1, 10**12])
def test_part_out_of_range_is_400(hub_server_module: HubServer, session: dict[str, Any], n: int) -> None:
    with client(hub_server_module) as c:
        r = c.put(f"{upload_path(session['model'], session['upload'])}/parts/{n}", content=b"x" * 10)
    assert_error(r, 400, "part_out_of_range")


def test_a_part_of_the_wrong_size_is_400_and_not_stored(
    hub_server_module: HubServer, session: dict[str, Any]
) -> None:
    path = upload_path(session["model"], session["upload"])
    with client(hub_server_module) as c:
        short = c.put(f"{path}/parts/1", content=b"x" * 1000)
        long_last = c.put(f"{path}/parts/2", content=b"x" * (PART // 2 + 1))
        parts = c.get(path).json()["parts"]
    assert_error(short, 400, "size_mismatch")
    assert_error(long_last, 400, "size_mismatch")
    assert parts == []


def test_complete_with_missing_parts_is_409_naming_them(
    hub_server_module: HubServer, session: dict[str, Any]
) -> None:
    with client(hub_server_module) as c:
        _put(c, session["model"], session["upload"], 2, session["data"])
        r = c.post(f"{upload_path(session['model'], session['upload'])}/complete")
    assert_error(r, 409, "parts_missing")
    assert "1" in r.json()["error"]["message"]


def test_sha256_mismatch_at_complete_is_400_and_fails_the_session(hub_server_module: HubServer) -> None:
    data = _data(1.1)
    with client(hub_server_module) as c:
        m = new_model(c)
        up = _create(c, m["id"], data, sha256="ab" * 32).json()
        for n in (1, 2):
            assert _put(c, m["id"], up["upload_id"], n, data).status_code == 200
        r = c.post(f"{upload_path(m['id'], up['upload_id'])}/complete")
        after = c.get(upload_path(m["id"], up["upload_id"])).json()
        listed = c.get(f"{API}/models/{m['id']}/checkpoints").json()
        late = _put(c, m["id"], up["upload_id"], 1, data)
    assert_error(r, 400, "checksum_mismatch")
    assert after["state"] == "failed" and listed == []
    assert_error(late, 409, "upload_not_open")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"kind": "middle"}, 422, "validation_error"),
        ({"size": 0}, 422, "validation_error"),
        ({"size": "10"}, 422, "validation_error"),
        ({"sha256": "XYZ"}, 422, "validation_error"),
        ({"part_size": 1024}, 422, "validation_error"),
        ({"epoch": -1}, 422, "validation_error"),
    ],
)
def test_bad_create_bodies_are_4xx(
    hub_server_module: HubServer, session: dict[str, Any], change: dict[str, Any], status: int, code: str
) -> None:
    body = {"kind": "last", "size": 100, "sha256": "ab" * 32, "part_size": PART, **change}
    with client(hub_server_module) as c:
        r = c.post(upload_path(session["model"]), json=body)
    assert_error(r, status, code)


def test_create_for_an_unknown_model_is_404(hub_server_module: HubServer) -> None:
    with client(hub_server_module) as c:
        r = c.post(upload_path("nope"), json={"kind": "last", "size": 1, "sha256": "ab" * 32})
    assert_error(r, 404, "model_not_found")


def test_a_file_over_the_server_limit_is_413(hub_server_factory: Any) -> None:
    server = hub_server_factory(env={"TRAINHUB_MAX_CHECKPOINT_BYTES": str(PART)})
    with client(server) as c:
        m = new_model(c)
        r = c.post(upload_path(m["id"]), json={"kind": "last", "size": PART + 1, "sha256": "ab" * 32})
    assert_error(r, 413, "payload_too_large")


def test_more_than_max_upload_parts_is_422(hub_server_factory: Any) -> None:
    server = hub_server_factory(env={"TRAINHUB_MAX_CHECKPOINT_BYTES": str(10**15)})
    with client(server) as c:
        m = new_model(c)
        body = {"kind": "last", "size": (MAX_UPLOAD_PARTS + 1) * PART, "sha256": "ab" * 32, "part_size": PART}
        r = c.post(upload_path(m["id"]), json=body)
    assert_error(r, 422, "validation_error")
    assert "part_size" in r.json()["error"]["message"]


def test_a_part_without_content_length_is_411(hub_server_module: HubServer, session: dict[str, Any]) -> None:
    def body() -> Any:
        yield b"x" * 10

    with client(hub_server_module) as c:
        r = c.put(f"{upload_path(session['model'], session['upload'])}/parts/1", content=body())
    assert_error(r, 411, "length_required")
