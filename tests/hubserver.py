"""The real hub server in a subprocess, for tests: :class:`HubServer` and the test admin key.

A module of its own (not conftest.py) so test files can import it at run time: several test
packages have a conftest.py, and ``from conftest import ...`` would pick whichever came first.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from backends import Instance

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
