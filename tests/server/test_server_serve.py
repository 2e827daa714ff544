"""``trainhub serve``: settings errors, clean SIGTERM, keep-alive latency (TCP_NODELAY)."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from server_helpers import API, client, new_model

from trainhub.server.errors import ConfigError
from trainhub.server.settings import ServerSettings

if TYPE_CHECKING:
    from conftest import HubServer


def test_settings_derive_urls_from_the_data_dir(tmp_path: Path) -> None:
    s = ServerSettings(data_dir=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path}/trainhub.db"
    assert s.storage_url == f"file://{tmp_path}/objects"


def test_unknown_scheme_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known schemes: postgresql, sqlite"):
        ServerSettings(data_dir=tmp_path, database_url="mysql://x/y")
    with pytest.raises(ValueError, match="known schemes: file, s3"):
        ServerSettings(data_dir=tmp_path, storage_url="s4://bucket")
    assert issubclass(ConfigError, ValueError)


def test_serve_with_an_unknown_scheme_fails_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHUB_")}
    r = subprocess.run(
        [sys.executable, "-m", "trainhub", "serve", "--port", "0", "--database-url", "oracle://x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 2
    assert "known schemes: postgresql, sqlite" in r.stderr and "Traceback" not in r.stderr


def test_sigterm_exits_zero(hub_server: HubServer) -> None:
    assert hub_server.stop() == 0


def test_restart_on_the_same_port(hub_server: HubServer) -> None:
    port = hub_server.port
    hub_server.stop()
    hub_server.start(port=port)
    assert hub_server.port == port
    assert httpx.get(f"{hub_server.url}{API}/health").status_code == 200


def test_keep_alive_requests_are_not_delayed_by_nagle(hub_server: HubServer) -> None:
    # Without TCP_NODELAY each keep-alive request after the first waits ~40 ms for a delayed ACK.
    with client(hub_server) as c:
        m = new_model(c)
        c.post(f"{API}/models/{m['id']}/metrics", json={"epochs": [{"epoch": 0, "metrics": {"a": 1.0}}]})
        times = []
        for i in range(20):
            t0 = time.perf_counter()
            r = c.post(
                f"{API}/models/{m['id']}/metrics", json={"epochs": [{"epoch": i, "metrics": {"a": 1.0}}]}
            )
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200
    assert statistics.median(times) < 0.030, times


def test_listening_socket_gives_accepted_connections_tcp_nodelay() -> None:
    # uvloop sets TCP_NODELAY anyway; plain asyncio only when the listener's proto is IPPROTO_TCP
    # (uvicorn issue #3149), so check the asyncio path, which the latency test cannot see.
    from trainhub.server.commands import _bind

    sock = _bind("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP
    seen: list[int] = []

    async def main() -> None:
        def on_client(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            seen.append(w.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            w.close()

        server = await asyncio.start_server(on_client, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            for _ in range(500):
                if seen:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(main())
    assert seen and seen[0] != 0
