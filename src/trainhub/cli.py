"""The ``trainhub`` command line.

Commands:
    trainhub serve [--host] [--port] [--data-dir] [--database-url] [--storage-url] [--public-url]
    trainhub keys create [--name] [--admin] | keys list | keys revoke KEY_ID
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainhub`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return int(_server_commands().serve(args))
    if args.command == "keys":
        return int(_server_commands().keys(args))
    if args.command == "version":
        print(f"trainhub {__version__}")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
