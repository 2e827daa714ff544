"""Checkpoints: streamed upload, verified download, atomicity, dedupe, slot rules, limits."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from server_helpers import API, assert_error, client, new_model, sha256, wait_until

if TYPE_CHECKING:
    from conftest import HubServer


def _blobs(server: HubServer) -> list[str]:
    return server.instance.blobs()


def _tmp(server: HubServer) -> list[str]:
    return server.instance.temp_objects()


def test_upload_then_download_gives_the_same_bytes(hub_server: HubServer) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    with client(hub_server) as c:
        m = new_model(c)
        r = c.put(
            f"{API}/models/{m['id']}/checkpoints/last",
            params={"epoch": 3, "map": 0.25},
            content=data,
            headers={"x-trainhub-sha256": sha256(data)},
        )
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["sha256"] == sha256(data) and out["size"] == len(data) and out["epoch"] == 3
        d = c.get(out["download_url"])
        listed = c.get(f"{API}/models/{m['id']}/checkpoints").json()
    assert d.status_code == 200
    assert sha256(d.content) == sha256(data)
    assert d.headers["content-length"] == str(len(data))
    assert f'filename="{m["id"]}-last.pt"' in d.headers["content-disposition"]
    assert [x["kind"] for x in listed] == ["last"]
    assert _tmp(hub_server) == []


def test_identical_content_is_stored_once(hub_server: HubServer) -> None:
    data = os.urandom(1000)
    with client(hub_server) as c:
        for _ in range(2):
            m = new_model(c)
            assert c.put(f"{API}/models/{m['id']}/checkpoints/last", content=data).status_code == 201
    assert len(_blobs(hub_server)) == 1


def test_last_with_is_best_also_fills_best(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
        c.put(
            f"{API}/models/{m['id']}/checkpoints/last", params={"epoch": 1, "is_best": "true"}, content=b"w1"
        )
        c.put(f"{API}/models/{m['id']}/checkpoints/last", params={"epoch": 2}, content=b"w2")
        by_kind = {x["kind"]: x for x in c.get(f"{API}/models/{m['id']}/checkpoints").json()}
    assert by_kind["best"]["sha256"] == sha256(b"w1") and by_kind["best"]["epoch"] == 1
    assert by_kind["last"]["sha256"] == sha256(b"w2")


def test_final_upload_marks_the_model_done_and_points_best_at_it(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
        r = c.put(
            f"{API}/models/{m['id']}/checkpoints/final", params={"epoch": 9, "map": 0.61}, content=b"final"
        )
        assert r.status_code == 201
        model = c.get(f"{API}/models/{m['id']}").json()
        by_kind = {x["kind"]: x for x in c.get(f"{API}/models/{m['id']}/checkpoints").json()}
    assert model["status"] == "done"
    assert by_kind["best"]["sha256"] == by_kind["final"]["sha256"] == sha256(b"final")
    assert by_kind["final"]["map"] == 0.61


def test_checksum_mismatch_leaves_nothing(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
        r = c.put(
            f"{API}/models/{m['id']}/checkpoints/last",
            content=b"abc",
            headers={"x-trainhub-sha256": "0" * 64},
        )
        assert_error(r, 400, "checksum_mismatch")
        assert c.get(f"{API}/models/{m['id']}/checkpoints").json() == []
        assert_error(c.get(f"{API}/models/{m['id']}/checkpoints/last/download"), 404, "checkpoint_not_found")
    assert _blobs(hub_server) == [] and _tmp(hub_server) == []


def test_client_disconnect_mid_upload_leaves_no_row_and_no_blob(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
    host, port = hub_server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    try:
        sock.sendall(
            (
                f"PUT {API}/models/{m['id']}/checkpoints/last HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {hub_server.api_key}\r\nContent-Length: 20000000\r\n\r\n"
            ).encode()
            + os.urandom(9_000_000)  # more than one S3 part (8 MiB): a multipart upload is open
        )
        # The body streams to a temp object; nothing is visible yet.
        wait_until(lambda: len(_tmp(hub_server)) == 1, what="the temp upload file")
        with client(hub_server) as c:
            assert c.get(f"{API}/models/{m['id']}/checkpoints").json() == []
    finally:
        sock.close()
    wait_until(lambda: _tmp(hub_server) == [], what="the temp file to be removed")
    with client(hub_server) as c:
        assert c.get(f"{API}/models/{m['id']}/checkpoints").json() == []
        assert c.get(f"{API}/models/{m['id']}").json()["status"] == "new"
    assert _blobs(hub_server) == []


def test_oversize_upload_is_413(hub_server_factory: Callable[..., HubServer]) -> None:
    server = hub_server_factory(env={"TRAINHUB_MAX_CHECKPOINT_BYTES": "1000"})
    with client(server) as c:
        m = new_model(c)
        assert_error(
            c.put(f"{API}/models/{m['id']}/checkpoints/last", content=b"x" * 1001), 413, "payload_too_large"
        )
        assert c.put(f"{API}/models/{m['id']}/checkpoints/last", content=b"x" * 1000).status_code == 201


def test_upload_without_content_length_is_411(hub_server: HubServer) -> None:
    def chunks():  # a generator body makes httpx send Transfer-Encoding: chunked
        yield b"abc"

    with client(hub_server) as c:
        m = new_model(c)
        assert_error(
            c.put(f"{API}/models/{m['id']}/checkpoints/last", content=chunks()), 411, "length_required"
        )
