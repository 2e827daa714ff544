"""After fork() a child gets its own spool connection and worker thread; a later process can sync."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from trainhub.client.session import HubSession
from trainhub.client.sync import sync_spool

from .conftest import FakeHub


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_can_use_the_session(fake_hub: FakeHub) -> None:
    s = HubSession("http://hub.test", http_transport=fake_hub.transport)
    assert s.flush(timeout=5)
    pid = os.fork()
    if pid == 0:  # the child: threads did not survive, a new worker must start
        code = 1
        try:
            # The fake hub is in-process: a parent thread (a heartbeat) may have held its lock at
            # the fork, and the child's copy would stay locked. A real hub is another process.
            fake_hub.lock = threading.Lock()
            s.queue_metrics(7, {"loss": 1.0})
            code = 0 if s.flush(timeout=5) else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child did not finish within 60 s")
        time.sleep(0.05)  # polling a child process with a deadline, not waiting for luck
    assert os.waitstatus_to_exitcode(status) == 0
    s.queue_metrics(8, {"loss": 1.0})  # the parent still works
    assert s.flush(timeout=5)
    s.close()


def test_sync_sends_what_an_offline_run_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = HubSession("http://hub.test", mode="offline")
    s.queue_metrics(0, {"loss": 1.0})
    s.close()
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={})

    real = __import__("trainhub.client.sync", fromlist=["Transport"]).Transport
    monkeypatch.setattr(
        "trainhub.client.sync.Transport",
        lambda *a, **k: real(*a, **{**k, "transport": httpx.MockTransport(handler)}),
    )
    report = sync_spool(s.spool.path)
    assert (report.left, report.failed, report.sent + report.present) == (0, 0, 2)
    assert seen == [f"/api/v1/models/{s.model_id}", f"/api/v1/models/{s.model_id}/metrics"]
    assert not Path(s.spool.path).exists()  # a spool left empty is deleted
