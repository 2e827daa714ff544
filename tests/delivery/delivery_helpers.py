"""Helpers of the delivery tests: a training child process, a fault-injecting proxy, server reads.

* :class:`Child`: a plain Python training loop using ``HubSession`` in its own process. It prints
  ``EPOCH <n> <seconds the callbacks took>`` after each epoch (durable by then) and ``DONE <json>``
  at the end; tests wait for those lines (markers, never sleeps) and may ``kill -9`` it.
* :class:`FaultProxy`: an HTTP proxy in front of the real server. A scripted ``rule`` decides for each
  request: pass it on, answer an error without passing it on (429 + Retry-After, 503), pass it on and
  then answer an error instead of the server's reply (a reply lost after the server acted), or pass
  it on and never answer. Every request's arrival time is recorded.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from conftest import HubServer

API = "/api/v1"

#: The training loop of a child process. argv: model_id epochs pause_seconds then (finish|hang).
CHILD_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from trainhub import HubSession

    model_id, epochs, pause, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    s = HubSession(model_id=model_id, name="loop", epochs=epochs, task="detect", config={"lr": 0.01})
    s.send_event("train", task="detect", mode="train")
    print("READY", flush=True)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        s.queue_metrics(epoch, {"train/loss": 1.0 / (epoch + 1), "metrics/mAP50(B)": epoch / 100.0})
        s.upload_metrics()
        print(f"EPOCH {epoch} {time.perf_counter() - t0:.6f}", flush=True)
        time.sleep(pause)
    if end == "hang":  # wait to be killed
        print("HANGING", flush=True)
        time.sleep(3600)
    weights = os.path.join(os.environ["CHILD_TMP"], f"{model_id}.pt")
    with open(weights, "wb") as f:
        f.write(b"weights of " + model_id.encode() * 100)
    s.set_final_metrics({"metrics/mAP50(B)": 0.5})
    s.upload_model(epochs - 1, weights, map=0.5, final=True)
    ok = s.flush(timeout=float(os.environ.get("CHILD_FLUSH_TIMEOUT", "60")))
    stats = s.stats
    s.close()
    print("DONE " + json.dumps({"flushed": ok, "stats": stats}, default=str), flush=True)
    """
)

#: A process that only delivers what an earlier one left: same model id, nothing new.
RECOVER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from trainhub import HubSession

    s = HubSession(model_id=sys.argv[1], name="loop")
    ok = s.flush(timeout=60)
    stats = s.stats
    s.close()
    print("DONE " + json.dumps({"flushed": ok, "stats": stats}, default=str), flush=True)
    """
)


def expected_metrics(epoch: int) -> dict[str, float]:
    """What the child loop reports for ``epoch``."""
    return {"metrics/mAP50(B)": epoch / 100.0, "train/loss": 1.0 / (epoch + 1)}


def child_env(
    tmp: Path, url: str, api_key: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment of a child: its own spool dir, events on, the hub at ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINHUB_", "PYTEST_"))}
    env.update(
        TRAINHUB_URL=url,
        TRAINHUB_SPOOL_DIR=str(tmp / "spool"),
        TRAINHUB_EVENTS="1",
        TRAINHUB_RAISE_CALLBACK_ERRORS="1",
        TRAINHUB_RETRY_MAX_DELAY="1",
        XDG_CONFIG_HOME=str(tmp / "config"),
        CHILD_TMP=str(tmp),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    if api_key:
        env["TRAINHUB_API_KEY"] = api_key
    env.update(extra or {})
    return env


class Child:
    """A child process whose stdout lines are collected by a thread (``lines`` queue + ``output``)."""

    def __init__(self, tmp: Path, script: str, args: list[str], env: Mapping[str, str]) -> None:
        path = tmp / f"child_{len(list(tmp.glob('child_*.py')))}.py"
        path.write_text(script)
        self.proc = subprocess.Popen(
            [sys.executable, str(path), *args],
            cwd=tmp,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, prefix: str, timeout: float = 60.0) -> str:
        """The next line starting with ``prefix`` (earlier lines are skipped); fails on timeout/exit."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {prefix!r} line within {timeout} s:\n{self.describe()}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"child exited before {prefix!r}:\n{self.describe()}")
            if line.startswith(prefix):
                return line

    def result(self, timeout: float = 120.0) -> dict[str, Any]:
        """The JSON of the ``DONE`` line; then waits for a clean exit."""
        line = self.wait_for("DONE ", timeout)
        assert self.proc.wait(30) == 0, self.describe()
        data: dict[str, Any] = json.loads(line[5:])
        return data

    def kill9(self) -> None:
        """SIGKILL, like the OOM killer or a preemption."""
        self.proc.kill()
        self.proc.wait(30)

    def epoch_times(self) -> dict[int, float]:
        """``{epoch: seconds the training thread spent in the callbacks}`` from the EPOCH lines."""
        out: dict[int, float] = {}
        for line in self.output:
            if line.startswith("EPOCH "):
                _, epoch, seconds = line.split()
                out[int(epoch)] = float(seconds)
        return out

    def describe(self) -> str:
        return "\n".join(self.output[-80:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill9()


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``python -m trainhub ARGS`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "trainhub", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- reading the server ---------------------------------------------------------------------------


def hub(server: HubServer) -> httpx.Client:
    """An httpx client on the real server with the admin key."""
    return httpx.Client(base_url=server.url, headers=server.headers(), timeout=30)


def server_state(server: HubServer, model_id: str) -> dict[str, Any]:
    """What the server holds for a model: metrics per epoch, checkpoints, status, final metrics."""
    with hub(server) as c:
        model = c.get(f"{API}/models/{model_id}")
        assert model.status_code == 200, model.text
        metrics = c.get(f"{API}/models/{model_id}/metrics").json()
        checkpoints = c.get(f"{API}/models/{model_id}/checkpoints").json()
    m = model.json()
    return {
        "status": m["status"],
        "name": m["name"],
        "epochs": m["epochs"],
        "config": m["config"],
        "final_metrics": m["final_metrics"],
        "metrics": metrics,
        "checkpoints": sorted(
            (ck["kind"], ck["epoch"], ck["sha256"], ck["size"], ck["is_best"]) for ck in checkpoints
        ),
    }


def events_total(server: HubServer) -> int:
    """How many usage events the server stored."""
    with hub(server) as c:
        return int(c.get(f"{API}/events/summary").json()["total"])


def assert_epochs_exactly_once(state: Mapping[str, Any], n: int) -> None:
    """Epochs ``0..n-1``, each once, with the values the child loop reported."""
    epochs = [row["epoch"] for row in state["metrics"]]
    assert epochs == list(range(n)), epochs
    for row in state["metrics"]:
        assert row["metrics"] == expected_metrics(row["epoch"]), row


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 20 ms until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


# -- the fault-injecting proxy ----------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """What the proxy does with one request.

    kind: ``pass``; ``answer`` (reply ``status`` + ``headers`` without passing the request on);
    ``lose_reply`` (pass it on, then reply ``status`` instead of the server's answer); ``hang`` (pass
    it on, then never answer: the connection is dropped when the proxy closes).
    """

    kind: str = "pass"
    status: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)


PASS = Action()


@dataclass
class Seen:
    """One request the proxy received."""

    t: float  # time.monotonic() at arrival
    method: str
    path: str
    action: Action
    replied_at: float = 0.0


Rule = Callable[[str, str, int], Action]


class FaultProxy:
    """A threaded HTTP/1.1 proxy to ``target`` applying ``rule(method, path, n)`` to every request,
    where ``n`` counts the requests that are not heartbeats so far (0-based; heartbeats get -1)."""

    def __init__(self, target: str, rule: Rule) -> None:
        self.target = urlsplit(target)
        self.rule = rule
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._count = 0
        self._closing = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                heartbeat = path.endswith("/heartbeat")
                with proxy._lock:
                    n = -1 if heartbeat else proxy._count
                    if not heartbeat:
                        proxy._count += 1
                    action = proxy.rule(self.command, path, n)
                    seen = Seen(time.monotonic(), self.command, path, action)
                    proxy.seen.append(seen)
                if action.kind == "answer":
                    self._reply(
                        action.status,
                        b'{"error": {"code": "injected", "message": "injected"}}',
                        {"content-type": "application/json", **action.headers},
                    )
                    seen.replied_at = time.monotonic()
                    return
                status, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                if action.kind == "hang":
                    proxy._closing.wait()
                    self.close_connection = True
                    return
                if action.kind == "lose_reply":
                    status, data = action.status, b'{"error": {"code": "injected", "message": "lost"}}'
                    headers = {"content-type": "application/json", **action.headers}
                self._reply(status, data, headers)
                seen.replied_at = time.monotonic()

            def _reply(self, status: int, data: bytes, headers: Mapping[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "date",
                        "server",
                    ):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _forward(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.target.hostname or "127.0.0.1", self.target.port, timeout=60)
        try:
            out = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, path, body=body, headers=out)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def requests(self, *, heartbeats: bool = False) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if heartbeats or not s.path.endswith("/heartbeat")]

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
