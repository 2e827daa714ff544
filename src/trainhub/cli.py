"""The ``trainhub`` command line.

Commands:
    trainhub serve [--host] [--port] [--workers] [--data-dir] [--database-url] [--storage-url]
                   [--public-url] [--s3-*] [--redirect-downloads]
    trainhub keys create [--name] [--admin | --read-only] [--user NAME] [--project NAME]...
        | keys list [--user NAME] | keys revoke KEY_ID
    trainhub users create NAME [--admin] [--password-stdin | --password-prompt] | users list
        | users disable NAME | users enable NAME | users passwd NAME [--password-stdin | --password-prompt]
    trainhub teams create NAME | teams list | teams add TEAM USER | teams remove TEAM USER
    trainhub db upgrade [--data-dir] [--database-url]
    trainhub migrate-data --from DB_URL --to DB_URL [--from-storage URL --to-storage URL] [--s3-*]
    trainhub datasets push PATH [--name] [--url] [--api-key] | datasets list [--url] [--api-key]
    trainhub sync [--spool-dir] [--status] [--url] [--api-key] [--timeout] [--retry-dead]
    trainhub pull MODEL [--last | --best | --final] [--out DIR] [--url] [--api-key]
    trainhub version

Server commands import the server lazily, so ``trainhub --help`` works with only the client
installed; a missing extra gives a "pip install 'trainhub[server]'" message instead of a trace.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from trainhub import __version__


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory of the SQLite database and files (default ./trainhub-data, or $TRAINHUB_DATA_DIR)",
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="database URL (default sqlite:///<data-dir>/trainhub.db, or $TRAINHUB_DATABASE_URL)",
    )


def _add_s3_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("S3 storage (default: the usual AWS_* variables and ~/.aws)")
    g.add_argument(
        "--s3-endpoint-url",
        default=None,
        help="S3 endpoint, e.g. http://minio:9000 ($TRAINHUB_S3_ENDPOINT_URL, else $AWS_ENDPOINT_URL)",
    )
    g.add_argument(
        "--s3-region", default=None, help="S3 region ($TRAINHUB_S3_REGION, else $AWS_DEFAULT_REGION)"
    )
    g.add_argument(
        "--s3-access-key-id",
        default=None,
        help="access key id ($TRAINHUB_S3_ACCESS_KEY_ID, else $AWS_ACCESS_KEY_ID)",
    )
    g.add_argument(
        "--s3-secret-access-key",
        default=None,
        help="secret key; prefer $TRAINHUB_S3_SECRET_ACCESS_KEY or $AWS_SECRET_ACCESS_KEY (flags show in ps)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (documented in docs/cli.md)."""
    parser = argparse.ArgumentParser(prog="trainhub", description="trainhub: a self-hosted training hub.")
    parser.add_argument("--version", action="version", version=f"trainhub {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the hub server")
    serve.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000; 0 picks a free one)")
    _add_store_args(serve)
    serve.add_argument(
        "--storage-url",
        default=None,
        help="object storage URL (default file://<data-dir>/objects, or $TRAINHUB_STORAGE_URL)",
    )
    serve.add_argument(
        "--public-url",
        default=None,
        help="URL users reach the hub at, used in printed links (default http://HOST:PORT)",
    )
    serve.add_argument("--log-level", default=None, help="uvicorn log level (default info)")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes sharing the port (default 1, or $TRAINHUB_WORKERS; >1 wants PostgreSQL)",
    )
    serve.add_argument(
        "--redirect-downloads",
        action="store_true",
        default=None,
        help="answer downloads with a 307 to a presigned S3 URL instead of streaming them",
    )
    _add_s3_args(serve)

    keys = sub.add_parser("keys", help="manage API keys (works on the database directly)")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kc = keys_sub.add_parser("create", help="create a key and print it once")
    kc.add_argument("--name", default="", help="a label for the key")
    scope = kc.add_mutually_exclusive_group()
    scope.add_argument("--admin", action="store_true", help="the key may manage other keys")
    scope.add_argument("--read-only", action="store_true", help="the key may only read (GET/HEAD)")
    kc.add_argument(
        "--user",
        default=None,
        metavar="NAME",
        help="the user the key acts for (default: the first admin user)",
    )
    kc.add_argument(
        "--project",
        dest="projects",
        action="append",
        default=None,
        metavar="NAME",
        help="the key may write only to this project (repeat for more; default: all its user may)",
    )
    _add_store_args(kc)
    kl = keys_sub.add_parser("list", help="list keys (never their secret)")
    kl.add_argument("--user", default=None, metavar="NAME", help="only the keys of this user")
    _add_store_args(kl)
    kr = keys_sub.add_parser("revoke", help="revoke a key by its id")
    kr.add_argument("key_id")
    _add_store_args(kr)

    us = sub.add_parser("users", help="manage users (works on the database directly)")
    us_sub = us.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    uc = us_sub.add_parser("create", help="create a user (with a password, or for API keys only)")
    uc.add_argument("name", help="user name: a-z 0-9 _ . - (1-64 characters)")
    uc.add_argument(
        "--admin", action="store_true", help="an admin user: sees every project, may hold admin keys"
    )
    up = us_sub.add_parser("passwd", help="set a user's password (ends their password web sessions)")
    up.add_argument("name", help="user name or id")
    for p, optional in ((uc, "; without either: no password, API keys only"), (up, "")):
        how = p.add_mutually_exclusive_group()
        how.add_argument(
            "--password-stdin", action="store_true", help="read the password from the first line of stdin"
        )
        how.add_argument(
            "--password-prompt",
            action="store_true",
            help=f"type the password (twice) at a prompt{optional or ' (the default on a terminal)'}",
        )
    ul = us_sub.add_parser("list", help="list users with their teams")
    ud = us_sub.add_parser("disable", help="disable a user: their keys and web sessions stop working")
    ud.add_argument("name", help="user name or id")
    ue = us_sub.add_parser("enable", help="enable a disabled user again")
    ue.add_argument("name", help="user name or id")
    for p in (uc, up, ul, ud, ue):
        _add_store_args(p)

    ts = sub.add_parser("teams", help="manage teams (works on the database directly)")
    ts_sub = ts.add_subparsers(dest="teams_command", metavar="ACTION", required=True)
    tc = ts_sub.add_parser("create", help="create a team")
    tc.add_argument("name", help="team name: a-z 0-9 _ . - (1-64 characters)")
    tl = ts_sub.add_parser("list", help="list teams with their members")
    ta = ts_sub.add_parser("add", help="put a user in a team")
    tr = ts_sub.add_parser("remove", help="take a user out of a team")
    for p in (ta, tr):
        p.add_argument("team", help="team name or id")
        p.add_argument("user", help="user name or id")
    for p in (tc, tl, ta, tr):
        _add_store_args(p)

    au = sub.add_parser("audit", help="print the newest audit log entries (works on the database directly)")
    au.add_argument("--limit", type=int, default=50, help="how many entries (default 50)")
    _add_store_args(au)

    dbp = sub.add_parser("db", help="database maintenance")
    db_sub = dbp.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    du = db_sub.add_parser("upgrade", help="apply the schema migrations (serve also does it on start)")
    _add_store_args(du)

    md = sub.add_parser(
        "migrate-data",
        help="copy a whole hub to other backends (say, SQLite + files to PostgreSQL + S3)",
    )
    md.add_argument("--from", dest="from_db", required=True, metavar="DB_URL", help="source database URL")
    md.add_argument("--to", dest="to_db", required=True, metavar="DB_URL", help="target database URL (empty)")
    md.add_argument(
        "--from-storage", default=None, metavar="URL", help="source storage URL (e.g. file:///...)"
    )
    md.add_argument(
        "--to-storage", default=None, metavar="URL", help="target storage URL (e.g. s3://bucket/hub)"
    )
    _add_s3_args(md)

    ds = sub.add_parser("datasets", help="dataset zips on a hub (for HUB-style training with no local files)")
    ds_sub = ds.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    dp = ds_sub.add_parser("push", help="upload a dataset zip; prints its id and reference")
    dp.add_argument("path", help="the zip: one *.yaml (no 'path:' line) plus images and labels")
    dp.add_argument("--name", default=None, help="dataset name (default: the zip's file name)")
    dl = ds_sub.add_parser("list", help="list the hub's datasets")
    for p in (dp, dl):
        p.add_argument("--url", default=None, help="hub URL (default $TRAINHUB_URL or http://127.0.0.1:8000)")
        p.add_argument("--api-key", default=None, help="API key (default $TRAINHUB_API_KEY)")

    sy = sub.add_parser(
        "sync", help="send what earlier, crashed or offline runs left in the spool; --status shows it"
    )
    sy.add_argument("--spool-dir", default=None, help="spool directory (default $TRAINHUB_SPOOL_DIR)")
    sy.add_argument(
        "--status", action="store_true", help="show pending items and rejected ones; send nothing"
    )
    sy.add_argument("--url", default=None, help="hub URL (default: the one each run was sent to)")
    sy.add_argument("--api-key", default=None, help="API key (default $TRAINHUB_API_KEY)")
    sy.add_argument("--timeout", type=float, default=600.0, help="longest time to keep trying (s)")
    sy.add_argument(
        "--retry-dead", action="store_true", help="also re-send the items the hub rejected before"
    )

    pl = sub.add_parser("pull", help="download a model's checkpoint (to resume training from it)")
    pl.add_argument("model", help="model id, or its page <hub>/models/<id>")
    which = pl.add_mutually_exclusive_group()
    for kind, text in (("last", "the last (default)"), ("best", "the best"), ("final", "the final")):
        which.add_argument(
            f"--{kind}", dest="kind", action="store_const", const=kind, help=f"{text} checkpoint"
        )
    pl.add_argument("--out", default=".", help="directory to write to (default: the current one)")
    pl.add_argument("--url", default=None, help="hub URL (default $TRAINHUB_URL or http://127.0.0.1:8000)")
    pl.add_argument("--api-key", default=None, help="API key (default $TRAINHUB_API_KEY)")

    sub.add_parser("version", help="print the version")
    return parser


def _server_commands() -> ModuleType:
    try:
        from trainhub.server import commands
    except ImportError as exc:  # the server extra is not installed
        raise SystemExit(
            f"trainhub: the server needs extra packages ({exc.name} is missing): "
            "pip install 'trainhub[server]'"
        ) from exc
    return commands


def _datasets(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainhub.client.settings import ClientSettings
    from trainhub.datasets import DatasetError, list_datasets, push_dataset

    settings = ClientSettings.from_env(url=args.url, api_key=args.api_key)
    try:
        if args.datasets_command == "push":
            ds = push_dataset(Path(args.path), url=settings.url, api_key=settings.api_key, name=args.name)
            print(f"Pushed dataset {ds['id']} ({ds['name']}, {ds['size']} bytes).")
            print(f"Train on it: set a model's data to {ds['reference']}", flush=True)
            return 0
        rows = list_datasets(url=settings.url, api_key=settings.api_key)
        print(f"{'ID':<22}{'SIZE':>12}  {'CREATED':<21}NAME")
        for d in rows:
            print(f"{d['id']:<22}{d['size'] or 0:>12}  {(d['created_at'] or '')[:19]:<21}{d['name']}")
        return 0
    except DatasetError as exc:
        print(f"trainhub: error: {exc}", file=sys.stderr, flush=True)
        return 1


def _sync(args: argparse.Namespace) -> int:
    import os

    from trainhub.client.errors import ConfigError
    from trainhub.client.settings import ClientSettings
    from trainhub.client.sync import spool_status, sync_dir

    try:
        settings = ClientSettings.from_env(spool_dir=args.spool_dir, api_key=args.api_key, url=args.url)
    except ConfigError as exc:
        print(f"trainhub: error: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.status:
        statuses = spool_status(settings.spool_dir)
        print(f"{len(statuses)} spool files in {settings.spool_dir}")
        for st in statuses:
            pending = ", ".join(f"{c}: {n}" for c, n in sorted(st.pending.items())) or "nothing"
            note = " (in use by a running process)" if st.in_use else ""
            print(f"{st.model_id}  {st.url or '-'}{note}\n  pending: {pending} ({st.pending_total} items)")
            if st.error:
                print(f"  error: {st.error}")
            if st.dead:
                print(f"  rejected by the hub ({len(st.dead)}; `trainhub sync --retry-dead` re-sends them):")
                for d in st.dead:
                    print(f"    #{d.id} {d.category} {d.key or ''} after {d.attempts} attempts: {d.error}")
        return 0
    # An explicit --url or TRAINHUB_URL wins; otherwise each spool goes where its run was sending.
    url = args.url or os.environ.get("TRAINHUB_URL") or None
    reports = sync_dir(settings, url=url, timeout=args.timeout, retry_dead=args.retry_dead, progress=True)
    for r in reports:
        if r.skipped:
            print(f"{r.model_id or r.path}: skipped, {r.skipped}")
            continue
        line = f"{r.model_id}: sent {r.sent}, already present {r.present}, failed {r.failed}, left {r.left}"
        print(line + (f" ({r.error})" if r.error else "") + (f" -> {r.url}" if r.url else ""))
    sent, present = sum(r.sent for r in reports), sum(r.present for r in reports)
    failed, left = sum(r.failed for r in reports), sum(r.left for r in reports)
    print(
        f"Summary: {len(reports)} spools, {sent} items sent, {present} already present, "
        f"{failed} failed, {left} left",
        flush=True,
    )
    if failed:
        print("Rejected items are kept; see them with `trainhub sync --status`.", file=sys.stderr)
    return 0 if not failed and not left and not any(r.error for r in reports) else 1


def _pull(args: argparse.Namespace) -> int:
    from trainhub.client.errors import TrainhubError
    from trainhub.client.pull import pull

    try:
        path = pull(args.model, args.kind or "last", out=args.out, url=args.url, api_key=args.api_key)
    except TrainhubError as exc:
        print(f"trainhub: error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(path, flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainhub`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return int(_server_commands().serve(args))
    if args.command == "keys":
        return int(_server_commands().keys(args))
    if args.command == "users":
        return int(_server_commands().users(args))
    if args.command == "teams":
        return int(_server_commands().teams(args))
    if args.command == "audit":
        return int(_server_commands().audit_log(args))
    if args.command == "db":
        return int(_server_commands().db(args))
    if args.command == "migrate-data":
        return int(_server_commands().migrate_data(args))
    if args.command == "datasets":
        return _datasets(args)
    if args.command == "pull":
        return _pull(args)
    if args.command == "sync":
        return _sync(args)
    if args.command == "version":
        print(f"trainhub {__version__}")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
