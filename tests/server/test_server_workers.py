"""``trainhub serve --workers N``: N stateless processes on one port, supervised."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from server_helpers import API, client, new_model, wait_until

if TYPE_CHECKING:
    from conftest import HubServer

_PIDS = re.compile(r"^trainhub: (\d+) workers \(pids ([\d, ]+)\)$")


def _pids(server: HubServer) -> list[int]:
    for line in server.output:
        m = _PIDS.match(line)
        if m:
            return [int(p) for p in m.group(2).split(", ")]
    raise AssertionError(f"no worker pids printed: {server.output}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (it waits for the supervisor to reap it).
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ", 1)[1][0] != "Z"


def test_two_workers_share_the_port_and_one_database(hub_server_factory: Callable[..., HubServer]) -> None:
    server = hub_server_factory(env={"TRAINHUB_WORKERS": "2"})
    assert len(_pids(server)) == 2
    ids = []
    with client(server) as c:
        for _ in range(10):
            ids.append(new_model(c)["id"])
    # Fresh connections are spread over both workers; each sees every model.
    for _ in range(6):
        with client(server) as c:
            listed = {m["id"] for m in c.get(f"{API}/models", params={"limit": 100}).json()}
            assert set(ids) <= listed


def test_a_killed_worker_is_replaced_and_sigterm_stops_all(
    hub_server_factory: Callable[..., HubServer],
) -> None:
    server = hub_server_factory(env={"TRAINHUB_WORKERS": "2"})
    first, second = _pids(server)
    os.kill(first, signal.SIGKILL)
    wait_until(
        lambda: any("starting a new one" in line for line in server.output), what="a replacement worker"
    )
    for _ in range(6):
        with client(server) as c:
            assert new_model(c)["id"]
    assert server.stop() == 0
    wait_until(lambda: not _alive(second), what="the workers to exit")


def test_a_revoked_key_stops_working_at_once_on_every_worker(
    hub_server_factory: Callable[..., HubServer],
) -> None:
    # Keys are looked up in the database on every request (no per-process cache), so a revocation
    # through one worker holds on the others from the next request on.
    server = hub_server_factory(env={"TRAINHUB_WORKERS": "2"})
    with client(server) as admin:
        created = admin.post(f"{API}/keys", json={"name": "leaving"}).json()
    key = created["key"]
    paths = (f"{API}/models", "/v1/models", "/api/account/summary")
    for _ in range(6):  # fresh connections spread over both workers: each has now seen the key
        with client(server, key) as c:
            assert all(c.get(p).status_code == 200 for p in paths)
    with client(server) as admin:
        assert admin.delete(f"{API}/keys/{created['id']}").status_code == 200
    for _ in range(10):
        with client(server, key) as c:
            statuses = [c.get(p).status_code for p in paths]
            assert all(s in (401, 403) for s in statuses), statuses
