"""`import trainhub` stays light: no server, web framework, database, torch or httpx."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = [
    "fastapi",
    "sqlalchemy",
    "starlette",
    "uvicorn",
    "torch",
    "trainhub.server",
    "httpx",
    "ultralytics",
]


def test_import_trainhub_pulls_in_nothing_heavy() -> None:
    code = (
        "import sys, trainhub\n"
        "from trainhub import HubSession\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
