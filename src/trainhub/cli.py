"""The ``trainhub`` command line.

Commands:
    trainhub serve [--host] [--port] [--data-dir] [--database-url] [--storage-url] [--public-url]
    trainhub keys create [--name] [--admin] | keys list | keys revoke KEY_ID
    trainhub datasets push PATH [--name] [--url] [--api-key] | datasets list [--url] [--api-key]
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

    keys = sub.add_parser("keys", help="manage API keys (works on the database directly)")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kc = keys_sub.add_parser("create", help="create a key and print it once")
    kc.add_argument("--name", default="", help="a label for the key")
    kc.add_argument("--admin", action="store_true", help="the key may manage other keys")
    _add_store_args(kc)
    kl = keys_sub.add_parser("list", help="list keys (never their secret)")
    _add_store_args(kl)
    kr = keys_sub.add_parser("revoke", help="revoke a key by its id")
    kr.add_argument("key_id")
    _add_store_args(kr)

    ds = sub.add_parser("datasets", help="dataset zips on a hub (for HUB-style training with no local files)")
    ds_sub = ds.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    dp = ds_sub.add_parser("push", help="upload a dataset zip; prints its id and reference")
    dp.add_argument("path", help="the zip: one *.yaml (no 'path:' line) plus images and labels")
    dp.add_argument("--name", default=None, help="dataset name (default: the zip's file name)")
    dl = ds_sub.add_parser("list", help="list the hub's datasets")
    for p in (dp, dl):
        p.add_argument("--url", default=None, help="hub URL (default $TRAINHUB_URL or http://127.0.0.1:8000)")
        p.add_argument("--api-key", default=None, help="API key (default $TRAINHUB_API_KEY)")

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainhub`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return int(_server_commands().serve(args))
    if args.command == "keys":
        return int(_server_commands().keys(args))
    if args.command == "datasets":
        return _datasets(args)
    if args.command == "version":
        print(f"trainhub {__version__}")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
