"""Chunked, resumable checkpoint uploads: the worker against the real hub server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from trainhub.client.checkpoints import CHUNKED_MIN_BYTES, _ranges, _unrange, choose_part_size
from trainhub.client.retry import RetryPolicy
from trainhub.client.spool import Spool
from trainhub.client.transport import Transport
from trainhub.client.worker import Worker
from trainhub.protocol import API_PREFIX, DEFAULT_PART_SIZE, MAX_UPLOAD_PARTS, MIN_PART_SIZE

if TYPE_CHECKING:
    from conftest import HubServer

PART = MIN_PART_SIZE


class StopAfter:
    """A worker ``wait`` that stops the worker at its first retry (an in-process "restart")."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, seconds: float) -> bool:
        self.calls += 1
        return True


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model(server: HubServer) -> str:
    model_id = os.urandom(10).hex()
    r = httpx.put(
        f"{server.url}{API_PREFIX}/models/{model_id}", json={"name": "run"}, headers=server.headers()
    )
    assert r.status_code == 201, r.text
    return model_id


def _worker(
    server: HubServer, spool: Spool, model_id: str, wait: Callable[[float], bool] | None = None
) -> Worker:
    transport = Transport(server.url, server.api_key)
    worker = Worker(
        spool, transport, model_id, policy=RetryPolicy(jitter="none"), wait=wait or (lambda s: False)
    )
    worker.uploads.part_size = PART
    worker.uploads.progress = False
    return worker


def _checkpoints(server: HubServer, model_id: str) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"{server.url}{API_PREFIX}/models/{model_id}/checkpoints", headers=server.headers())
    return {c["kind"]: c for c in r.json()}


def _weights(tmp_path: Path, parts: float, name: str = "last.pt") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(int(parts * PART)))
    return path


def test_a_large_checkpoint_goes_in_parts_and_is_stored_intact(hub_server: HubServer, tmp_path: Path) -> None:
    model_id = _model(hub_server)
    weights = _weights(tmp_path, 3.3)
    spool = Spool.for_model(tmp_path / "spool", model_id)
    spool.put("checkpoint", {"path": str(weights), "kind": "last", "epoch": 4, "is_best": True, "map": 0.5})
    worker = _worker(hub_server, spool, model_id)
    assert worker.drain()
    stored = _checkpoints(hub_server, model_id)
    assert stored["last"]["sha256"] == _sha(weights) and stored["last"]["epoch"] == 4
    assert stored["best"]["sha256"] == _sha(weights)
    assert worker.uploads.stats() == {"bytes_sent": weights.stat().st_size, "parts_sent": 4}


def test_the_upload_id_and_acknowledged_parts_are_kept_in_the_spool_item(
    hub_server: HubServer, tmp_path: Path
) -> None:
    model_id = _model(hub_server)
    weights = _weights(tmp_path, 4)
    spool = Spool.for_model(tmp_path / "spool", model_id)
    spool.put("checkpoint", {"path": str(weights), "kind": "last", "epoch": 1})
    worker = _worker(hub_server, spool, model_id, wait=StopAfter())
    sent = [0]

    def cut_in_part_three(n: int) -> None:
        sent[0] += n
        if sent[0] > 2.5 * PART:
            raise OSError("network cable pulled")

    worker.uploads.on_bytes = cut_in_part_three
    assert not worker.drain()
    [item] = spool.items()
    state = item.payload["upload"]
    assert state["parts"] == [[1, 2]] and len(state["upload_id"]) == 32
    assert state["size"] == weights.stat().st_size and state["sha256"] == _sha(weights)


def test_a_new_process_resumes_from_the_acknowledged_parts(hub_server: HubServer, tmp_path: Path) -> None:
    model_id = _model(hub_server)
    weights = _weights(tmp_path, 4)
    spool_dir = tmp_path / "spool"
    spool = Spool.for_model(spool_dir, model_id)
    spool.put("checkpoint", {"path": str(weights), "kind": "last", "epoch": 1})
    first = _worker(hub_server, spool, model_id, wait=StopAfter())
    sent = [0]

    def cut_in_part_three(n: int) -> None:
        sent[0] += n
        if sent[0] > 2.5 * PART:
            raise OSError("the process died")

    first.uploads.on_bytes = cut_in_part_three
    assert not first.drain()
    spool.close()  # the item is still leased: the next opener makes it ready again

    reopened = Spool.for_model(spool_dir, model_id)
    second = _worker(hub_server, reopened, model_id)
    assert second.drain()
    assert _checkpoints(hub_server, model_id)["last"]["sha256"] == _sha(weights)
    assert second.uploads.bytes_sent == 2 * PART  # parts 3 and 4 only: 1 and 2 were acknowledged
    # Across both "processes", the re-sent bytes are the half part that was cut: less than one part.
    assert first.uploads.bytes_sent + second.uploads.bytes_sent - weights.stat().st_size < PART


def test_a_checkpoint_rewritten_mid_upload_starts_a_new_session_with_the_new_bytes(
    hub_server: HubServer, tmp_path: Path
) -> None:
    model_id = _model(hub_server)
    weights = _weights(tmp_path, 3)
    spool = Spool.for_model(tmp_path / "spool", model_id)
    spool.put("checkpoint", {"path": str(weights), "kind": "last", "epoch": 1})
    worker = _worker(hub_server, spool, model_id)
    rewritten = []

    def rewrite_once(n: int) -> None:
        if not rewritten and worker.uploads.bytes_sent >= PART:  # after part 1, like the next epoch's save
            rewritten.append(True)
            tmp = weights.with_suffix(".new")
            tmp.write_bytes(os.urandom(3 * PART))
            os.replace(tmp, weights)

    worker.uploads.on_bytes = rewrite_once
    assert worker.drain()
    assert _checkpoints(hub_server, model_id)["last"]["sha256"] == _sha(weights)
    assert worker.counters["retries"] == {"checkpoint": 1}
    assert hub_server.instance.temp_objects() == []  # the abandoned session was aborted


def test_identical_content_is_sent_once(hub_server: HubServer, tmp_path: Path) -> None:
    first_model, second_model = _model(hub_server), _model(hub_server)
    weights = _weights(tmp_path, 2)
    workers = []
    for model_id in (first_model, second_model):
        spool = Spool.for_model(tmp_path / "spool", model_id)
        spool.put("checkpoint", {"path": str(weights), "kind": "last", "epoch": 1})
        workers.append(_worker(hub_server, spool, model_id))
        assert workers[-1].drain()
    assert workers[0].uploads.bytes_sent == weights.stat().st_size
    assert workers[1].uploads.bytes_sent == 0
    assert workers[1].counters["present"] == {"checkpoint": 1}
    assert _checkpoints(hub_server, second_model)["last"]["sha256"] == _sha(weights)


def test_a_session_the_hub_forgot_is_started_over(hub_server: HubServer, tmp_path: Path) -> None:
    model_id = _model(hub_server)
    weights = _weights(tmp_path, 2)
    st = weights.stat()
    spool = Spool.for_model(tmp_path / "spool", model_id)
    stale = {
        "upload_id": "0" * 32,
        "sha256": _sha(weights),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "part_size": PART,
        "parts": [[1, 1]],
    }
    spool.put("checkpoint", {"path": str(weights), "kind": "last", "epoch": 1, "upload": stale})
    worker = _worker(hub_server, spool, model_id)
    assert worker.drain()
    assert _checkpoints(hub_server, model_id)["last"]["sha256"] == _sha(weights)
    assert worker.uploads.bytes_sent == st.st_size


def test_small_checkpoints_keep_the_single_put(hub_server: HubServer, tmp_path: Path) -> None:
    model_id = _model(hub_server)
    weights = tmp_path / "small.pt"
    weights.write_bytes(os.urandom(CHUNKED_MIN_BYTES - 1))
    spool = Spool.for_model(tmp_path / "spool", model_id)
    spool.put("checkpoint", {"path": str(weights), "kind": "last", "epoch": 1})
    worker = _worker(hub_server, spool, model_id)
    assert worker.drain()
    assert worker.uploads.bytes_sent == 0
    assert _checkpoints(hub_server, model_id)["last"]["sha256"] == _sha(weights)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1, DEFAULT_PART_SIZE),
        (200 * 1024**2, DEFAULT_PART_SIZE),  # a 32nd is 6.25 MiB: the 8 MiB floor
        (1024**3, 32 * 1024**2),  # a 32nd of the file
        (1024**3 + 1, 33 * 1024**2),  # whole MiB, rounded up
        (10 * 1024**3, 64 * 1024**2),  # the 64 MiB cap
        (1000 * 1024**3, 103 * 1024**2),  # past the cap only to stay within MAX_UPLOAD_PARTS
    ],
)
def test_part_size_is_a_32nd_of_the_file_between_8_and_64_mib(size: int, expected: int) -> None:
    assert choose_part_size(size) == expected
    assert -(-size // choose_part_size(size)) <= MAX_UPLOAD_PARTS


def test_acknowledged_parts_are_stored_as_ranges() -> None:
    parts = [1, 2, 3, 7, 9, 10]
    assert _ranges(parts) == [[1, 3], [7, 7], [9, 10]]
    assert _unrange(_ranges(parts)) == parts
    assert _ranges(list(range(1, 10_001))) == [[1, 10_000]]
