"""``trainhub serve`` and ``trainhub keys``: called by :mod:`trainhub.cli` with parsed args.

``serve`` binds the listening socket itself so ``--port 0`` works and the real port can be
printed (``trainhub listening on http://HOST:PORT``) once the app is ready. The socket is made
with ``proto=IPPROTO_TCP``: accepted sockets inherit it and asyncio only sets TCP_NODELAY when
it sees IPPROTO_TCP; with ``proto=0`` (what a pre-bound socket gets by default, uvicorn issue
#3149) Nagle stays on and each keep-alive request waits ~40 ms on the peer's delayed ACK.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from types import FrameType
from typing import Any

from pydantic import ValidationError

from trainhub.server.errors import ConfigError

__all__ = ["keys", "serve"]


def _fail(message: str) -> int:
    print(f"trainhub: error: {message}", file=sys.stderr, flush=True)
    return 2


def _settings(args: argparse.Namespace, fields: tuple[str, ...]) -> Any:
    from trainhub.server.settings import ServerSettings

    # CLI flags override TRAINHUB_* variables; an unset flag (None) leaves the env/default.
    overrides = {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
    return ServerSettings(**overrides)


def _settings_error(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(addr)
    sock.set_inheritable(True)
    return sock


def serve(args: argparse.Namespace) -> int:
    """Run the hub server until SIGINT/SIGTERM; returns the exit code."""
    import uvicorn

    from trainhub.server.app import create_app
    from trainhub.server.backends import open_store
    from trainhub.server.services.keys import bootstrap_admin, is_registered

    fields = ("host", "port", "data_dir", "database_url", "storage_url", "public_url", "log_level")
    try:
        settings = _settings(args, fields)
    except ValidationError as exc:
        return _fail(_settings_error(exc))
    logging.basicConfig(level=settings.log_level.upper() if settings.log_level != "trace" else "DEBUG")
    # Alembic reports every (idempotent) migration check at INFO; only its problems matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)

    try:
        store = open_store(settings.database_url)
        store.migrate()
        admin_key = settings.admin_key_value()
        secret, generated = bootstrap_admin(store, admin_key)
        if generated:
            print(f"trainhub: admin API key (shown once, store it now): {secret}", flush=True)
        elif secret is not None:
            print("trainhub: registered the admin key from TRAINHUB_ADMIN_KEY.", flush=True)
        elif admin_key is not None and not is_registered(store, admin_key):
            logging.getLogger("trainhub.server").warning(
                "TRAINHUB_ADMIN_KEY is set but not registered: it only applies to an empty key table"
            )
        store.close()
    except ConfigError as exc:
        return _fail(str(exc))

    try:
        sock = _bind(settings.host, settings.port)
    except OSError as exc:
        return _fail(f"cannot listen on {settings.host}:{settings.port}: {exc}")
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    listen_url = f"http://{shown_host}:{port}"
    if settings.public_url is None:
        settings.public_url = listen_url

    config = uvicorn.Config(
        create_app(settings),
        log_level=settings.log_level,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=10,
    )

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # lifespan (migrations, object store) finished without error
                print(f"trainhub listening on {listen_url}", flush=True)
                print(f"trainhub data dir: {settings.data_dir}", flush=True)
                print(
                    f"trainhub: open {settings.public_url} and log in with an API key "
                    "(new keys: trainhub keys create)",
                    flush=True,
                )

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            # uvicorn re-raises a captured signal after its graceful shutdown, so the process
            # would die "by SIGTERM"; the shutdown was clean, so serve() returns 0 instead.
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list) and sig in captured:
                captured.remove(sig)

    server = _Server(config)
    try:
        # uvicorn installs SIGINT/SIGTERM handlers: both stop accepting, finish requests, exit 0.
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else 1


def keys(args: argparse.Namespace) -> int:
    """``trainhub keys create|list|revoke`` on the database directly; returns the exit code."""
    from trainhub.server.backends import open_store
    from trainhub.server.errors import ApiError
    from trainhub.server.services import keys as svc

    try:
        settings = _settings(args, ("data_dir", "database_url"))
        store = open_store(settings.database_url)
        store.migrate()
    except ValidationError as exc:
        return _fail(_settings_error(exc))
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        if args.keys_command == "create":
            key, secret = svc.create_key(store, args.name, is_admin=args.admin)
            kind = "admin key" if key["is_admin"] else "key"
            print(f"Created {kind} {key['id']} ({key['name'] or 'no name'}). Shown once, store it now:")
            print(secret, flush=True)
            return 0
        if args.keys_command == "list":
            rows = svc.list_keys(store)
            print(f"{'ID':<14}{'PREFIX':<12}{'ADMIN':<7}{'STATE':<9}{'LAST USED':<22}NAME")
            for k in rows:
                state = "revoked" if k["revoked_at"] else "active"
                last = (k["last_used_at"] or "never")[:19]
                admin = "yes" if k["is_admin"] else "no"
                print(f"{k['id']:<14}{k['prefix'] + '…':<12}{admin:<7}{state:<9}{last:<22}{k['name']}")
            return 0
        if args.keys_command == "revoke":
            try:
                key = svc.revoke_key(store, args.key_id)
            except ApiError as exc:
                return _fail(exc.message)
            print(f"Revoked key {key['id']} ({key['name'] or 'no name'}).")
            return 0
        return _fail(f"unknown keys action {args.keys_command!r}")
    finally:
        store.close()
