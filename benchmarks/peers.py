"""The servers of the side-by-side benchmark (:mod:`benchmarks.compare`), each on 127.0.0.1.

* :func:`trainhub_server`: ``trainhub serve`` on SQLite (fresh data dir) or on a PostgreSQL URL;
* :func:`mlflow_server`: ``mlflow server`` on SQLite with a local artifact dir (artifacts proxied
  through the server, so ``log_artifact`` uploads over HTTP as trainhub's client does);
* :func:`raw_put_server`: the machine's ceiling for an upload, a minimal streaming HTTP server
  (:mod:`benchmarks.rawput`) that writes a PUT body to a file in 1 MiB chunks;
* :func:`floor_server`: a do-nothing ASGI app under uvicorn (:mod:`benchmarks.floor`), the floor
  of one request on this stack;
* :func:`postgres_database`: a fresh ``bench_<random>`` database, dropped afterwards.

Each yields a :class:`Server` whose ``started_s`` is the time from spawning the process to the
first 200 on its health endpoint, and whose :meth:`Server.rss_bytes` sums the RSS of the process
and all its children. Nothing here installs anything or talks to a host other than 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

#: The admin key of every benchmark hub (the one benchmarks/upload.py's client role uses too).
ADMIN_KEY = "ul_" + "b2" * 20
#: Environment of every process the benchmark starts: no telemetry, wandb offline only.
QUIET_ENV = {
    "TRAINHUB_EVENTS": "0",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_DISABLE_GIT": "true",
    "WANDB_DISABLE_CODE": "true",
    "WANDB_CONSOLE": "off",
    "PYTHONUNBUFFERED": "1",
}


def bench_env(**extra: str) -> dict[str, str]:
    """This process's environment plus :data:`QUIET_ENV` (and ``extra``)."""
    env = {**os.environ, **QUIET_ENV, **extra}
    src = str(Path(__file__).resolve().parents[1] / "src")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, src, env.get("PYTHONPATH", "")) if p)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_rss(pid: int) -> int:
    """RSS of a process and all its descendants, in bytes (0 if it is gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def tree_count(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        return 1 + len(proc.children(recursive=True))
    except psutil.NoSuchProcess:
        return 0


@dataclass
class Server:
    """A running server: its root URL, process, start time and how to authenticate."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    started_s: float
    headers: dict[str, str] = field(default_factory=dict)
    data_dir: Path | None = None

    def rss_bytes(self) -> int:
        return tree_rss(self.proc.pid)

    def processes(self) -> int:
        return tree_count(self.proc.pid)


class RssSampler:
    """Samples a process tree's RSS every ``interval`` seconds in a thread; ``peak`` is the max."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.baseline = tree_rss(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.pid))


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, t0: float, timeout: float, log: Path) -> float:
    """Seconds from ``t0`` to the first 200 from ``url``; raises if the process dies or times out."""
    deadline = t0 + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if client.get(url).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"no 200 from {url} within {timeout} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (uvicorn/gunicorn workers included), SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@contextmanager
def _spawn(
    name: str, cmd: list[str], health: str, port: int, tmp: Path, env: dict[str, str], timeout: float = 120.0
) -> Iterator[Server]:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        t0 = time.perf_counter()
        # A new session, so stopping it also stops every worker process it forked.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        started = _wait_healthy(proc, url + health, t0, timeout, log)
        yield Server(name=name, url=url, proc=proc, started_s=started, data_dir=tmp)
    finally:
        _stop(proc)


@contextmanager
def trainhub_server(tmp: Path, database_url: str | None = None, name: str = "trainhub") -> Iterator[Server]:
    """``trainhub serve`` on a free port; SQLite in ``tmp`` unless ``database_url`` is given."""
    data = tmp / name
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "trainhub",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data),
        "--log-level",
        "warning",
    ]
    if database_url:
        cmd += ["--database-url", database_url]
    # No per-key rate limit: the benchmark measures the server, not its limiter (MLflow has none).
    env = bench_env(TRAINHUB_ADMIN_KEY=ADMIN_KEY, TRAINHUB_RATE_LIMIT_RPS="0")
    with _spawn(name, cmd, "/api/v1/health", port, data, env) as server:
        server.headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        yield server


def mlflow_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("mlflow") is not None


def wandb_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("wandb") is not None


@contextmanager
def mlflow_server(tmp: Path) -> Iterator[Server]:
    """``mlflow server`` with its defaults, on SQLite, artifacts proxied to a local dir."""
    data = tmp / "mlflow"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    exe = Path(sys.executable).with_name("mlflow")
    cmd = [
        str(exe) if exe.exists() else "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{data / 'mlflow.db'}",
        "--artifacts-destination",
        str(data / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with _spawn("mlflow", cmd, "/health", port, data, bench_env()) as server:
        yield server


@contextmanager
def raw_put_server(tmp: Path) -> Iterator[Server]:
    """The minimal streaming PUT server of :mod:`benchmarks.rawput`."""
    data = tmp / "rawput"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [sys.executable, "-m", "benchmarks.rawput", str(port), str(data)]
    with _spawn("raw-put", cmd, "/health", port, data, bench_env()) as server:
        yield server


@contextmanager
def floor_server(tmp: Path) -> Iterator[Server]:
    """The do-nothing ASGI app of :mod:`benchmarks.floor` under uvicorn, as ``trainhub serve`` runs it."""
    data = tmp / "floor"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "benchmarks.floor:app", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "warning", "--no-access-log", "--no-server-header"]
    with _spawn("floor", cmd, "/health", port, data, bench_env()) as server:
        yield server


def postgres_reachable(admin_url: str) -> str | None:
    """None if PostgreSQL answers at ``admin_url``, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(_libpq(admin_url), connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: skip the PostgreSQL rows
        return f"{type(exc).__name__}: {str(exc).strip()[:200]}"


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh ``bench_<random>`` database next to ``admin_url``'s; yields its URL, then drops it."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(_libpq(admin_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
