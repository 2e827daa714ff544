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

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends import SERVICES, Instance, new_instance, selected_backends
from hubserver import ADMIN_KEY, HubServer


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
