"""``trainhub serve``, ``keys``, ``users``, ``teams``, ``audit``, ``db`` and ``migrate-data``:
called by :mod:`trainhub.cli`.

``keys``, ``users``, ``teams`` and ``audit`` work on the database directly (migrating it first),
acting as :data:`trainhub.server.services.audit.CLI_ACTOR` in the audit log; their errors
(unknown user or team, bad name, short password) are one ``trainhub: error:`` line and exit code 2.

``serve`` binds the listening socket itself so ``--port 0`` works and the real port can be
printed (``trainhub listening on http://HOST:PORT``) once the app is ready. The socket is made
with ``proto=IPPROTO_TCP``: accepted sockets inherit it and asyncio only sets TCP_NODELAY when
it sees IPPROTO_TCP; with ``proto=0`` (what a pre-bound socket gets by default, uvicorn issue
#3149) Nagle stays on and each keep-alive request waits ~40 ms on the peer's delayed ACK.

``serve --workers N`` (why this shape): the parent migrates the database and binds the socket
once, then forks N workers that all accept on that same socket (the kernel spreads connections;
each worker inherits the IPPROTO_TCP socket object, so TCP_NODELAY holds in every worker). The
parent only supervises: a worker that dies is replaced, SIGTERM/SIGINT stop all of them
gracefully. Workers keep no state of their own (everything is in the database and the object
store), so any worker can answer any request.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from pydantic import ValidationError

from trainhub.server.errors import ConfigError

__all__ = [
    "RedactAccessLog",
    "audit_log",
    "db",
    "keys",
    "migrate_data",
    "plain_http_warning",
    "read_password",
    "redact_path",
    "serve",
    "teams",
    "users",
]

log = logging.getLogger("trainhub.server")
#: Seconds a worker gets to finish its requests after SIGTERM (then the supervisor kills it).
_GRACEFUL_SECONDS = 10
#: A worker that dies sooner than this after its start is restarted only after a pause (no fork loop).
_MIN_WORKER_LIFE = 2.0


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


def plain_http_warning(host: str, public_url: str | None) -> str | None:
    """Why serving on ``host`` is unsafe, or None: a non-loopback address without TLS in front.

    The hub speaks plain HTTP; TLS belongs to a reverse proxy (docs/deployment.md), which the
    operator signals with an ``https://`` ``TRAINHUB_PUBLIC_URL``.
    """
    try:
        loopback = ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback or (public_url or "").lower().startswith("https://"):
        return None
    return (
        f"listening on {host}, reachable from other machines, over plain HTTP: API keys, passwords "
        "and session cookies cross the network unencrypted. Put a TLS proxy in front and set "
        "TRAINHUB_PUBLIC_URL=https://... (docs/security.md), or listen on 127.0.0.1."
    )


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
    """Run the hub server (``--workers N`` processes) until SIGINT/SIGTERM; returns the exit code."""
    from trainhub.server.backends import open_store
    from trainhub.server.services.keys import bootstrap_admin, is_registered

    fields = (
        "host",
        "port",
        "data_dir",
        "database_url",
        "storage_url",
        "public_url",
        "log_level",
        "workers",
        *_S3_FIELDS,
    )
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
    except Exception as exc:  # a database that cannot be reached: say so, no trace
        return _fail(f"cannot open the database {_redact(settings.database_url)}: {_first_line(exc)}")

    try:
        sock = _bind(settings.host, settings.port)
    except OSError as exc:
        return _fail(f"cannot listen on {settings.host}:{settings.port}: {exc}")
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    listen_url = f"http://{shown_host}:{port}"
    warning = plain_http_warning(host, settings.public_url)
    if warning is not None:
        print(f"trainhub: WARNING: {warning}", file=sys.stderr, flush=True)
    if settings.public_url is None:
        settings.public_url = listen_url

    def announce() -> None:
        print(f"trainhub listening on {listen_url}", flush=True)
        print(f"trainhub data dir: {settings.data_dir}", flush=True)
        print(
            f"trainhub: open {settings.public_url} and log in with a user's password or an API key "
            "(trainhub users create, trainhub keys create)",
            flush=True,
        )

    try:
        if settings.workers == 1:
            return 0 if _run_worker(settings, sock, announce) else 1
        return _supervise(settings, sock, announce)
    finally:
        sock.close()


_SIGNED_PATH = re.compile(r"^(/(?:dl|up)/\d+/)[^/?]+")
_SECRET_QUERY = re.compile(r"([?&](?:api_key|key|token|sig|signature)=)[^&]*", re.IGNORECASE)


def redact_path(path: str) -> str:
    """A request path fit for a log line: signed-URL signatures and key-like query values hidden."""
    return _SECRET_QUERY.sub(r"\1***", _SIGNED_PATH.sub(r"\1***", path))


class RedactAccessLog(logging.Filter):
    """Hides secrets in uvicorn's access log lines (args: client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def _run_worker(settings: Any, sock: socket.socket, on_started: Callable[[], None]) -> bool:
    """Serve on ``sock`` in this process until SIGINT/SIGTERM; whether the app started."""
    import uvicorn

    from trainhub.server.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        log_level=settings.log_level,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
    )
    # After Config(): it (re)configures uvicorn's loggers.
    logging.getLogger("uvicorn.access").addFilter(RedactAccessLog())

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # lifespan (migrations, object store) finished without error
                on_started()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            # uvicorn re-raises a captured signal after its graceful shutdown, so the process
            # would die "by SIGTERM"; the shutdown was clean, so serve() returns 0 instead.
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list) and sig in captured:
                captured.remove(sig)

    server = _Server(config)
    # uvicorn installs SIGINT/SIGTERM handlers: both stop accepting, finish requests, exit 0.
    server.run(sockets=[sock])
    return bool(server.started)


def _supervise(settings: Any, sock: socket.socket, announce: Callable[[], None]) -> int:
    """Fork ``settings.workers`` workers on ``sock``; replace dead ones; stop all on SIGTERM/SIGINT."""
    sock.listen(2048)
    ready_r, ready_w = os.pipe()
    stopping: list[int] = []
    workers: dict[int, float] = {}  # pid -> start time

    def spawn() -> int:
        pid = os.fork()
        if pid == 0:  # the worker: plain signal handling (uvicorn installs its own), serve, exit
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.close(ready_r)

                def started() -> None:
                    os.write(ready_w, b"1")

                code = 0 if _run_worker(settings, sock, started) else 1
            except BaseException:
                logging.getLogger("trainhub.server").exception("worker %d failed", os.getpid())
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        workers[pid] = time.monotonic()
        return pid

    def on_signal(sig: int, _frame: FrameType | None) -> None:
        stopping.append(sig)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for _ in range(settings.workers):
        spawn()

    # Announce once every worker has started (their lifespans ran: the app is ready everywhere).
    started = 0
    deadline = time.monotonic() + 60
    os.set_blocking(ready_r, False)
    while started < settings.workers and not stopping and time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            started += len(os.read(ready_r, 64))
        if _reap(workers, restart=None):
            stopping.append(0)
            log.error("a worker exited during start-up; stopping")
            break
        time.sleep(0.05)
    ok = started >= settings.workers
    if ok:
        pids = ", ".join(map(str, sorted(workers)))
        print(f"trainhub: {settings.workers} workers (pids {pids})", flush=True)
        announce()

    while ok and not stopping:
        _drain(ready_r)
        _reap(workers, restart=spawn)
        time.sleep(0.2)

    for pid in list(workers):
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + _GRACEFUL_SECONDS + 5
    while workers and time.monotonic() < deadline:
        _reap(workers, restart=None)
        time.sleep(0.05)
    for pid in list(workers):
        _signal(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(ready_r)
    os.close(ready_w)
    return 0 if ok else 1


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 64):
            pass
    except BlockingIOError:
        pass


def _reap(workers: dict[int, float], restart: Callable[[], int] | None) -> bool:
    """Collect exited workers (restarting them if ``restart``); whether any had exited."""
    exited = False
    for pid, started_at in list(workers.items()):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            continue
        exited = True
        del workers[pid]
        if restart is not None:
            log.warning("worker %d exited (status %d); starting a new one", pid, status)
            if time.monotonic() - started_at < _MIN_WORKER_LIFE:
                time.sleep(_MIN_WORKER_LIFE)
            restart()
    return exited


def _first_line(exc: BaseException) -> str:
    # SQLAlchemy appends the SQL and a "Background on this error" link: one line is enough here.
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _redact(url: str) -> str:
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split(":", 1)[0] + "://..."


#: Settings fields of the S3 flags (serve and migrate-data).
_S3_FIELDS = (
    "s3_endpoint_url",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
    "redirect_downloads",
)


def db(args: argparse.Namespace) -> int:
    """``trainhub db upgrade``: apply the migrations to a database; returns the exit code."""
    from trainhub.server.backends import open_store

    logging.basicConfig(level="WARNING")
    try:
        settings = _settings(args, ("data_dir", "database_url"))
        store = open_store(settings.database_url)
    except ValidationError as exc:
        return _fail(_settings_error(exc))
    except ConfigError as exc:
        return _fail(str(exc))
    shown = _redact(settings.database_url)
    try:
        before = store.migrate()
        after = store.revision()
    except Exception as exc:
        return _fail(f"cannot upgrade {shown}: {_first_line(exc)}")
    finally:
        store.close()
    if before == after:
        print(f"{shown}: already at revision {after} (head)", flush=True)
    else:
        print(f"{shown}: upgraded from revision {before or '(empty)'} to {after} (head)", flush=True)
    return 0


def migrate_data(args: argparse.Namespace) -> int:
    """``trainhub migrate-data --from URL --to URL [--from-storage URL --to-storage URL]``."""
    from trainhub.server import migrate_data as md
    from trainhub.server.backends import check_database_url, check_storage_url
    from trainhub.server.objects import StorageOptions

    logging.basicConfig(level="WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        check_database_url(args.from_db)
        check_database_url(args.to_db)
        for url in (args.from_storage, args.to_storage):
            if url is not None:
                check_storage_url(url)
        options = StorageOptions(
            s3_endpoint_url=args.s3_endpoint_url,
            s3_region=args.s3_region,
            s3_access_key_id=args.s3_access_key_id,
            s3_secret_access_key=args.s3_secret_access_key,
        )
        started = time.monotonic()
        report = md.migrate_data(
            args.from_db,
            args.to_db,
            from_storage=args.from_storage,
            to_storage=args.to_storage,
            storage_options=options,
            log=lambda line: print(line, flush=True),
        )
    except ConfigError as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(f"migrate-data failed (the target database was left unchanged): {_first_line(exc)}")
    total = sum(report.rows.values())
    print(
        f"migrated {total} rows in {len(report.rows)} tables and {report.blobs_copied} files "
        f"({report.bytes_copied} bytes; {report.blobs_present} already there) "
        f"in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    if report.missing_blobs:
        print(
            f"trainhub: warning: {len(report.missing_blobs)} files referenced by the source database "
            f"were missing in the source storage too: {', '.join(report.missing_blobs[:5])}",
            file=sys.stderr,
            flush=True,
        )
    return 0


def audit_log(args: argparse.Namespace) -> int:
    """``trainhub audit``: print the newest audit log entries; returns the exit code."""
    from trainhub.server.backends import open_store
    from trainhub.server.services import audit

    try:
        settings = _settings(args, ("data_dir", "database_url"))
        store = open_store(settings.database_url)
        store.migrate()
    except ValidationError as exc:
        return _fail(_settings_error(exc))
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        print(f"{'ID':<8}{'AT':<21}{'ACTOR':<14}{'ACTION':<14}{'TARGET':<14}DETAIL")
        for e in audit.list_entries(store, limit=args.limit):
            at = (e["at"] or "")[:19]
            target = e["target"] or "-"
            print(f"{e['id']:<8}{at:<21}{e['actor']:<14}{e['action']:<14}{target:<14}{e['detail'] or ''}")
        return 0
    finally:
        store.close()


def _open_db(args: argparse.Namespace) -> Any:
    """The migrated store of ``--data-dir``/``--database-url`` (or TRAINHUB_*), or an exit code."""
    from trainhub.server.backends import open_store

    logging.basicConfig(level="WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = _settings(args, ("data_dir", "database_url"))
        store = open_store(settings.database_url)
    except ValidationError as exc:
        return _fail(_settings_error(exc))
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        store.migrate()
    except Exception as exc:
        store.close()
        return _fail(f"cannot open the database {_redact(settings.database_url)}: {_first_line(exc)}")
    return store


def read_password(args: argparse.Namespace, *, required: bool) -> str | None:
    """The password of ``users create``/``users passwd``: from stdin (``--password-stdin``: its
    first line) or typed twice at a prompt (``--password-prompt``). Without either flag: None if
    not ``required``, else the prompt on a terminal and stdin otherwise.

    Raises:
        ConfigError: nothing was read, or the two typed passwords differ.
    """
    import getpass

    use_stdin = getattr(args, "password_stdin", False)
    use_prompt = getattr(args, "password_prompt", False)
    if not use_stdin and not use_prompt:
        if not required:
            return None
        use_stdin = not sys.stdin.isatty()
    if use_stdin:
        line = sys.stdin.readline()
        if not line:
            raise ConfigError("no password on stdin")
        return line.rstrip("\r\n")
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Password again: ")
    except (EOFError, KeyboardInterrupt):
        raise ConfigError("no password given") from None
    if first != second:
        raise ConfigError("the two passwords differ")
    return first


def users(args: argparse.Namespace) -> int:
    """``trainhub users create|list|disable|enable|passwd`` on the database; returns the exit code."""
    from trainhub.server.errors import ApiError
    from trainhub.server.services import audit
    from trainhub.server.services import users as svc

    store = _open_db(args)
    if isinstance(store, int):
        return store
    action, actor = args.users_command, audit.CLI_ACTOR
    try:
        if action == "create":
            password = read_password(args, required=False)
            user = svc.create_user(store, args.name, password=password, is_admin=args.admin, actor=actor)
            kind = "admin user" if user["is_admin"] else "user"
            login = "with a password" if password is not None else "without a password (API keys only)"
            print(f"Created {kind} {user['name']} ({user['id']}) {login}.", flush=True)
            return 0
        if action == "list":
            print(f"{'ID':<14}{'NAME':<22}{'ADMIN':<7}{'STATE':<10}{'CREATED':<21}TEAMS")
            for u in svc.list_users(store):
                state = "disabled" if u["disabled_at"] else "active"
                admin = "yes" if u["is_admin"] else "no"
                created = (u["created_at"] or "")[:19]
                teams_text = ",".join(u["teams"]) or "-"
                print(f"{u['id']:<14}{u['name']:<22}{admin:<7}{state:<10}{created:<21}{teams_text}")
            return 0
        if action == "disable":
            user = svc.disable_user(store, args.name, actor=actor)
            print(f"Disabled user {user['name']}: their keys and web sessions stop working now.", flush=True)
            return 0
        if action == "enable":
            user = svc.enable_user(store, args.name, actor=actor)
            print(f"Enabled user {user['name']}.", flush=True)
            return 0
        if action == "passwd":
            svc.require_user(store, args.name)  # no prompt for a user who does not exist
            password = read_password(args, required=True)
            assert password is not None
            svc.set_password(store, args.name, password, actor=actor)
            print(f"Set the password of {args.name} (their password web sessions ended).", flush=True)
            return 0
        return _fail(f"unknown users action {action!r}")
    except ApiError as exc:
        return _fail(exc.message)
    except ConfigError as exc:
        return _fail(str(exc))
    finally:
        store.close()


def teams(args: argparse.Namespace) -> int:
    """``trainhub teams create|list|add|remove`` on the database; returns the exit code."""
    from trainhub.server.errors import ApiError
    from trainhub.server.services import audit
    from trainhub.server.services import users as svc

    store = _open_db(args)
    if isinstance(store, int):
        return store
    action, actor = args.teams_command, audit.CLI_ACTOR
    try:
        if action == "create":
            team = svc.create_team(store, args.name, actor=actor)
            print(f"Created team {team['name']} ({team['id']}).", flush=True)
            return 0
        if action == "list":
            print(f"{'ID':<14}{'NAME':<22}{'CREATED':<21}MEMBERS")
            for t in svc.list_teams(store):
                created = (t["created_at"] or "")[:19]
                members = ",".join(t["members"]) or "-"
                print(f"{t['id']:<14}{t['name']:<22}{created:<21}{members}")
            return 0
        if action in ("add", "remove"):
            change = svc.add_member if action == "add" else svc.remove_member
            team = change(store, args.team, args.user, actor=actor)
            done = "Added" if action == "add" else "Removed"
            where = "to" if action == "add" else "from"
            members = ", ".join(team["members"]) or "none"
            print(f"{done} {args.user} {where} team {team['name']} (members: {members}).", flush=True)
            return 0
        return _fail(f"unknown teams action {action!r}")
    except ApiError as exc:
        return _fail(exc.message)
    finally:
        store.close()


def keys(args: argparse.Namespace) -> int:
    """``trainhub keys create|list|revoke`` on the database directly; returns the exit code."""
    from trainhub.protocol import ErrorCode
    from trainhub.server.errors import ApiError
    from trainhub.server.schemas import KeyCreateIn
    from trainhub.server.services import audit
    from trainhub.server.services import keys as svc

    if args.keys_command == "create":
        try:  # the same rules as POST /api/v1/keys
            body = KeyCreateIn(
                name=args.name,
                is_admin=args.admin,
                read_only=args.read_only,
                user=args.user,
                projects=args.projects,
            )
        except ValidationError as exc:
            return _fail(_settings_error(exc))
    store = _open_db(args)
    if isinstance(store, int):
        return store
    try:
        if args.keys_command == "create":
            key, secret = svc.create_key(
                store,
                body.name,
                is_admin=body.is_admin,
                read_only=body.read_only,
                user=body.user,
                projects=body.projects,
                actor=audit.CLI_ACTOR,
            )
            kind = "admin key" if key["is_admin"] else "read-only key" if key["read_only"] else "key"
            limit = f", writes only to {', '.join(key['projects'])}" if key["projects"] is not None else ""
            print(
                f"Created {kind} {key['id']} ({key['name'] or 'no name'}) of user {key['user']}{limit}. "
                "Shown once, store it now:"
            )
            print(secret, flush=True)
            return 0
        if args.keys_command == "list":
            rows = svc.list_keys(store, args.user)
            print(
                f"{'ID':<14}{'PREFIX':<12}{'SCOPE':<7}{'STATE':<9}{'LAST USED':<21}"
                f"{'USER':<17}{'PROJECTS':<21}NAME"
            )
            for k in rows:
                state = "revoked" if k["revoked_at"] else "active"
                last = (k["last_used_at"] or "never")[:19]
                user = k["user"] or "-"
                listed = ",".join(k["projects"]) if k["projects"] is not None else "all"
                print(
                    f"{k['id']:<14}{k['prefix'] + '…':<12}{k['scope']:<7}{state:<9}{last:<21}"
                    f"{user:<16} {listed:<20} {k['name']}"
                )
            return 0
        if args.keys_command == "revoke":
            key = svc.revoke_key(store, args.key_id, actor=audit.CLI_ACTOR)
            print(f"Revoked key {key['id']} ({key['name'] or 'no name'}).")
            return 0
        return _fail(f"unknown keys action {args.keys_command!r}")
    except ApiError as exc:
        if args.keys_command == "create" and args.user is None and exc.code == ErrorCode.USER_NOT_FOUND:
            return _fail(
                "there is no admin user to own the key: name its user with --user NAME, or make an "
                "admin user first (trainhub users create NAME --admin)"
            )
        return _fail(exc.message)
    except ConfigError as exc:
        return _fail(str(exc))
    finally:
        store.close()
