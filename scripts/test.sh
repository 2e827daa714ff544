#!/usr/bin/env bash
# Install everything trainhub needs for its tests into a virtualenv OUTSIDE the checkout, then run
# the linters, the type checker and the whole test suite (heavy tests included).
#
#   bash scripts/test.sh [pytest args...]
#
# TRAINHUB_VENV picks the virtualenv (default ~/.cache/trainhub-dev/venv). The venv lives outside
# the repo on purpose: ultralytics writes datasets and runs next to a venv it finds in a git tree.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${TRAINHUB_VENV:-$HOME/.cache/trainhub-dev/venv}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "== creating virtualenv $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
echo "== installing torch (CPU use), ultralytics, lightning, transformers and trainhub[dev]"
"${pip[@]}" install --upgrade pip
# Pin torch + torchvision first so nothing else pulls a different (multi-GB) torch build.
"${pip[@]}" install "torch==2.14.1" "torchvision==0.29.1"
"${pip[@]}" install -e "$repo[dev,ultralytics]"
# aiohttp: ultralytics' Platform NDJSON datasets (else it pip-installs it mid-run).
"${pip[@]}" install aiohttp
# The Lightning and Transformers integrations' tests, pinned (torch stays the one pinned above).
"${pip[@]}" install "torch==2.14.1" "lightning==2.6.6" "transformers==5.24.0" "accelerate==1.15.0"
# The HUB-era client (HUB protocol) beside the newest one, sharing torch; tests/compat runs it with
# PYTHONPATH=$venv/ul114 (skipped, with the reason, when that directory is missing).
if [ ! -d "$venv/ul114/hub_sdk" ]; then
  echo "== installing ultralytics 8.4.114 + hub-sdk 0.0.25 into $venv/ul114"
  "${pip[@]}" install --no-deps --target "$venv/ul114" "ultralytics==8.4.114" "hub-sdk==0.0.25"
fi

# The web UI tests drive Debian's Chromium through Playwright (no browser download, ever).
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (web UI tests)"
  apt-get update -qq && apt-get install -y -qq chromium
fi

# The postgres+s3 test backend and the scale tests: nginx (Debian), PostgreSQL on 127.0.0.1:5432
# (database `test`; these machines run it), moto's S3 server (the dev extra). In CI (CI=true) a
# missing service is an error here, not a skip later. TRAINHUB_TEST_BACKENDS=sqlite skips them all.
if [ "${TRAINHUB_TEST_BACKENDS:-sqlite,postgres}" != "sqlite" ]; then
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "== installing nginx (multi-worker tests)"
    apt-get update -qq && apt-get install -y -qq nginx
  fi
  pg_host=${TRAINHUB_TEST_PG_HOST:-127.0.0.1} pg_port=${TRAINHUB_TEST_PG_PORT:-5432}
  if ! "$venv/bin/python" - "$pg_host" "$pg_port" <<'PY'
import sys, psycopg
psycopg.connect(host=sys.argv[1], port=int(sys.argv[2]), dbname="test", user="postgres", connect_timeout=5).close()
PY
  then
    msg="PostgreSQL is not reachable at $pg_host:$pg_port (database test, user postgres)"
    if [ "${CI:-}" = "true" ]; then
      echo "error: $msg: CI runs every server test on postgresql+s3" >&2
      exit 1
    fi
    echo "warning: $msg; the postgres+s3 tests will be skipped" >&2
  fi
fi

cd "$repo"
echo "== ruff"
"$venv/bin/ruff" check src tests benchmarks
echo "== mypy --strict"
"$venv/bin/mypy"
echo "== pytest"
# Two test processes (pytest-xdist; TRAINHUB_TEST_WORKERS=0 for one): most tests wait on servers
# and subprocesses, so two halve the wall time on a 2-core machine. A file's tests stay together
# (--dist loadfile): they share module-scoped servers.
workers=${TRAINHUB_TEST_WORKERS:-2}
"$venv/bin/python" -m pytest -n "$workers" --dist loadfile "$@"
