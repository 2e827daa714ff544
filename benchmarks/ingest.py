"""Metric ingest throughput (points/s) of a real hub, by backend, worker count and stored points.

For each level of stored points (1k ... 10M, bulk-loaded straight into ``metric_points`` of 100
background models) and each worker count, starts ``trainhub serve --workers N`` on the database,
then ``--clients`` threads each stream epochs (one request per epoch of ``--metrics`` values, as
the client sends them) to their own fresh model for ``--seconds``; prints points/s and request
latency percentiles. The load generator runs on the same machine (it takes CPU from the server).

    python benchmarks/ingest.py --backend sqlite --workers 1
    python benchmarks/ingest.py --backend postgres --workers 1 3 \\
        --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test

PostgreSQL runs in a fresh schema (dropped at the end); SQLite in a temp dir.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

KEY = "ul_" + "b2" * 20
API = "/api/v1"
_LISTENING = re.compile(r"^trainhub listening on (http://\S+)$")
BG_MODELS = 100


def start_server(env: dict[str, str], workers: int, data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "trainhub", "serve", "--port", "0", "--workers", str(workers)]
    cmd += ["--data-dir", str(data_dir), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = _LISTENING.match(line.strip())
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stdout or []], daemon=True).start()
            return proc, m.group(1)
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(30)


def stored_points(db: str, pg_schema: str | None, pg_conninfo: str | None, data_dir: Path) -> int:
    if pg_schema is None:
        with sqlite3.connect(data_dir / "trainhub.db") as conn:
            return int(conn.execute("SELECT count(*) FROM metric_points").fetchone()[0])
    import psycopg

    with psycopg.connect(pg_conninfo or "", autocommit=True) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{pg_schema}".metric_points').fetchone()
        return int(row[0]) if row else 0


def bulk_load(n: int, bg: list[str], pg_schema: str | None, pg_conninfo: str | None, data_dir: Path) -> None:
    """Add ``n`` points to the background models (10 metrics per step, steps continue per model)."""
    names = [f"metrics/m{i}" for i in range(10)]
    per_model = max(1, n // len(bg))
    steps = max(1, per_model // len(names))

    def rows(offset: int) -> object:
        for mid in bg:
            for s in range(offset, offset + steps):
                for name in names:
                    yield (mid, name, s, 1.0 / (s + 1))

    offset = _BG_OFFSET[0]
    _BG_OFFSET[0] += steps
    if pg_schema is None:
        with sqlite3.connect(data_dir / "trainhub.db") as conn:
            conn.executemany(
                "INSERT INTO metric_points (model_id, name, step, value) VALUES (?, ?, ?, ?)", rows(offset)
            )
        return
    import psycopg

    with psycopg.connect(pg_conninfo or "") as conn, conn.cursor() as cur:
        with cur.copy(f'COPY "{pg_schema}".metric_points (model_id, name, step, value) FROM STDIN') as copy:
            buf = io.StringIO()
            for i, (mid, name, s, v) in enumerate(rows(offset)):  # type: ignore[attr-defined]
                buf.write(f"{mid}\t{name}\t{s}\t{v}\n")
                if i % 100_000 == 99_999:
                    copy.write(buf.getvalue())
                    buf = io.StringIO()
            copy.write(buf.getvalue())
        cur.execute(f'ANALYZE "{pg_schema}".metric_points')


_BG_OFFSET = [0]


def measure(url: str, clients: int, seconds: float, metrics: int) -> tuple[float, float, float]:
    points = [0] * clients
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def run(i: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c:
            mid = secrets.token_hex(10)
            assert c.put(f"{API}/models/{mid}", json={"name": f"bench-{i}"}).status_code in (200, 201)
            epoch = 0
            mine: list[float] = []
            while time.monotonic() < stop_at:
                body = {
                    "epochs": [
                        {"epoch": epoch, "metrics": {f"m{k}": 1.0 / (epoch + k + 1) for k in range(metrics)}}
                    ]
                }
                t0 = time.perf_counter()
                r = c.post(f"{API}/models/{mid}/metrics", json=body)
                mine.append(time.perf_counter() - t0)
                if r.status_code == 200:
                    points[i] += metrics
                epoch += 1
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 2 else [0.0] * 99
    return sum(points) / elapsed, q[49] * 1000, q[98] * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    p.add_argument("--workers", type=int, nargs="+", default=[1])
    p.add_argument("--levels", type=int, nargs="+", default=[1_000, 100_000, 1_000_000, 10_000_000])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--metrics", type=int, default=10, help="metrics per epoch (points per request)")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="trainhub-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHUB_")}
    env.update({"TRAINHUB_ADMIN_KEY": KEY, "TRAINHUB_RATE_LIMIT_RPS": "0", "TRAINHUB_EVENTS": "0"})
    schema = conninfo = None
    if args.backend == "postgres":
        import psycopg
        import sqlalchemy as sa

        schema = f"bench_{secrets.token_hex(4)}"
        u = sa.make_url(args.pg_url)
        conninfo = f"host={u.host} port={u.port or 5432} dbname={u.database} user={u.username}"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        env["TRAINHUB_DATABASE_URL"] = f"{args.pg_url}?options=-csearch_path%3D{schema}"
    try:
        proc, url = start_server(env, 1, tmp)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as c:
            bg = [secrets.token_hex(10) for _ in range(BG_MODELS)]
            for mid in bg:
                c.put(f"{API}/models/{mid}", json={"name": "background"})
        stop_server(proc)
        print(
            f"backend={args.backend} clients={args.clients} seconds={args.seconds} "
            f"points/request={args.metrics}"
        )
        print(f"{'stored points':>14} {'workers':>8} {'points/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for level in sorted(args.levels):
            have = stored_points(args.backend, schema, conninfo, tmp)
            if level > have:
                t0 = time.monotonic()
                bulk_load(level - have, bg, schema, conninfo, tmp)
                print(f"  (loaded {level - have} points in {time.monotonic() - t0:.0f} s)", file=sys.stderr)
            for workers in args.workers:
                proc, url = start_server(env, workers, tmp)
                try:
                    rate, p50, p99 = measure(url, args.clients, args.seconds, args.metrics)
                finally:
                    stop_server(proc)
                stored = stored_points(args.backend, schema, conninfo, tmp)
                print(f"{stored:>14,} {workers:>8} {rate:>10,.0f} {p50:>8.1f} {p99:>8.1f}", flush=True)
    finally:
        if schema is not None:
            import psycopg

            with psycopg.connect(conninfo or "", autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return 0


if __name__ == "__main__":
    sys.exit(main())
