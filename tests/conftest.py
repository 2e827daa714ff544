"""Shared fixtures: a REAL hub server in a subprocess, reached over HTTP on 127.0.0.1.

Fixtures (usable from every test package):

* ``hub_server``: function scope, a fresh data dir per test.
* ``hub_server_module``: module scope, for fast read-only / bad-input suites.
* ``hub_server_factory``: ``factory(data_dir=None, admin_key=ADMIN_KEY, env=None)`` starts
  more servers (say, without ``TRAINHUB_ADMIN_KEY`` or with a small checkpoint limit); all
  are stopped at teardown. The same ``data_dir`` again means the same hub (same database).
* ``hub_backend``: the backend of this test's servers, ``sqlite`` (SQLite + files) or ``postgres``
  (PostgreSQL + S3). Every test that uses the fixtures above runs once per backend (see
  ``tests/backends.py``; ``TRAINHUB_TEST_BACKENDS=sqlite`` runs only the fast one).

Each yields a :class:`HubServer` with ``.url``, ``.api_key`` (an admin key), ``.data_dir``,
``.backend``, ``.instance`` (its isolated storage: ``.blobs()``, ``.temp_objects()``,
``.database_text()``, ``.database_url``), ``.cli_env()`` (environment for ``trainhub`` commands on
the same hub), ``.output`` (everything the process printed), ``.stop()`` and ``.start(port=None)``
(restart on the same storage; a new port unless ``port`` is given). Readiness is the server's own
``trainhub listening on ...`` line, awaited with a timeout: no sleeping for luck.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends import SERVICES, Instance, new_instance, selected_backends

#: The admin key the fixtures register through TRAINHUB_ADMIN_KEY.
ADMIN_KEY = "ul_" + "a1" * 20
_LISTENING = re.compile(r"^trainhub listening on (http://\S+)$")
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0


class HubServer:
    """A ``python -m trainhub serve`` subprocess on 127.0.0.1."""

    def __init__(
        self,
        data_dir: Path,
        admin_key: str | None = ADMIN_KEY,
        env: dict[str, str] | None = None,
        instance: Instance | None = None,
    ):
        self.data_dir = data_dir
        self.instance = instance or Instance("sqlite", data_dir)
        self.backend = self.instance.backend
        self.api_key = admin_key
        self.url = ""
        self.port = 0
        self.output: list[str] = []
        self._env = env or {}
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def cli_env(self) -> dict[str, str]:
        """Environment for ``trainhub`` commands on this hub's storage (its backend's URLs)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINHUB_", "AWS_"))}
        env.update(self.instance.env)
        return env

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, port: int | None = None) -> HubServer:
        """Start (or restart) on the same data dir; waits for the "listening on" line."""
        assert not self.running, "already running"
        env = self.cli_env()
        env.update({"PYTHONUNBUFFERED": "1", "TRAINHUB_LOG_LEVEL": "warning"})
        if self.api_key is not None:
            env["TRAINHUB_ADMIN_KEY"] = self.api_key
        env.update(self._env)
        cmd = [sys.executable, "-m", "trainhub", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(port if port is not None else 0), "--data-dir", str(self.data_dir)]
        self._proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        ready = threading.Event()
        proc = self._proc

        def read() -> None:
            # Drains the pipe for the whole life of the process, so it never blocks on a full pipe.
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                self.output.append(line)
                m = _LISTENING.match(line)
                if m and not ready.is_set():
                    self.url = m.group(1)
                    ready.set()
            ready.set()  # EOF: the process died; start() reports it

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(_START_TIMEOUT) or not self.running or not self.url:
            out = "\n".join(self.output)
            self.kill()
            raise RuntimeError(f"hub server did not start; output:\n{out}")
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> int | None:
        """SIGTERM, wait; SIGKILL if it hangs. Returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        self._proc = None
        self.url = ""
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL (simulates a crash)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self.stop()

    def headers(self, key: str | None = None) -> dict[str, str]:
        """``Authorization: Bearer`` headers for ``key`` (default: the admin key)."""
        return {"Authorization": f"Bearer {key or self.api_key}"}


@pytest.fixture(scope="session", autouse=True)
def _backend_services() -> Iterator[None]:
    """Stops the session's S3 server (started on first use by a postgres test)."""
    yield
    SERVICES.stop()


@pytest.fixture(scope="module", params=selected_backends())
def hub_backend(request: pytest.FixtureRequest) -> str:
    """The backend of this test's hub servers (parametrizes every test that starts one)."""
    return str(request.param)


@pytest.fixture
def hub_server_factory(tmp_path: Path, hub_backend: str) -> Iterator[Callable[..., HubServer]]:
    """Start extra servers: ``factory(data_dir=None, admin_key=ADMIN_KEY, env=None)``."""
    servers: list[HubServer] = []
    made: dict[Path, Instance] = {}

    def make(
        data_dir: Path | None = None, admin_key: str | None = ADMIN_KEY, env: dict[str, str] | None = None
    ) -> HubServer:
        data_dir = data_dir or tmp_path / f"hub{len(servers)}"
        if data_dir not in made:
            made[data_dir] = new_instance(hub_backend, data_dir)
        server = HubServer(data_dir, admin_key, env, made[data_dir])
        servers.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
        for instance in made.values():
            instance.drop()


@pytest.fixture
def hub_server(hub_server_factory: Callable[..., HubServer]) -> HubServer:
    """A running hub server with a fresh data dir, stopped at teardown."""
    return hub_server_factory()


@pytest.fixture(scope="module")
def hub_server_module(hub_backend: str) -> Iterator[HubServer]:
    """One hub server shared by a test module (for read-only and bad-input tests)."""
    with tempfile.TemporaryDirectory(prefix="trainhub-test-") as tmp:
        instance = new_instance(hub_backend, Path(tmp) / "hub")
        try:
            server = HubServer(instance.data_dir, instance=instance).start()
            try:
                yield server
            finally:
                server.stop()
        finally:
            instance.drop()
