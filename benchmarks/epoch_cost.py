"""Where one epoch's time goes on the hub: the figures behind the one-epoch goal of issue 10.

    python -m benchmarks.epoch_cost [--requests N] [--epochs N] [--only http,write,replaced]

Prints JSON (and a short table on stderr) with:

1. ``http``: one 15-metric epoch per ``POST /models/{id}/metrics`` over one kept-alive connection
   (the compare script's client and body), against three servers on 127.0.0.1, one after another:
   ``trainhub serve``; the same app with the metrics route answered by a bare ASGI handler in front
   of it (``bare``: no middleware, no routing, no thread pool; the key lookup, validation and write
   inline on the event loop; an experiment, not how the hub runs); and the do-nothing floor
   (:mod:`benchmarks.floor`). For each: p50/p99 wall time, and the CPU time per request of the
   server process (from ``/proc``) and of this client.
2. ``write``: one epoch's ``put_metrics`` in-process on a SQLite store (no HTTP), p50, as the hub
   does it (``full``), without the chart rollups (``no_rollups``) and with the rollups of levels
   0-3 only (``rollups_4_levels``; the last two are experiments, not how the hub stores).
3. ``replaced``: finding which points of a 1,000-point append-only batch (10 series x 100 steps,
   after 30,000 steps) are already stored: the per-point probe vs the per-series shortcut.

Nothing here installs anything; it needs the server extra and psutil (``.[bench]``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import peers
from benchmarks.clientside import epoch_metrics
from benchmarks.workloads import FloorTarget, TrainhubTarget, http_client

_METRICS_PATH = re.compile(r"^/api/v1/models/([^/]+)/metrics$")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def http_epochs(server: peers.Server, target: Any, requests: int) -> dict[str, Any]:
    """p50/p99 of one-epoch POSTs, and server and client CPU per request (first 50 are warm-up)."""
    import psutil

    proc = psutil.Process(server.proc.pid)
    with http_client(target.headers, 60) as client:
        run = target.create_run(client, "epoch-cost")
        bodies = [
            target.batch(run, [(n, e, v) for n, v in epoch_metrics(e).items()]) for e in range(requests)
        ]
        for url, body in bodies[:50]:
            client.post(url, content=body).raise_for_status()
        before, mine, times = proc.cpu_times(), time.process_time(), []
        for url, body in bodies[50:]:
            t0 = time.perf_counter()
            client.post(url, content=body).raise_for_status()
            times.append(time.perf_counter() - t0)
        after, n = proc.cpu_times(), len(bodies) - 50
    server_cpu = (after.user + after.system - before.user - before.system) / n
    return {
        "p50_ms": round(statistics.median(times) * 1e3, 3),
        "p99_ms": round(_p(times, 0.99) * 1e3, 3),
        "server_cpu_ms": round(server_cpu * 1e3, 3),
        "client_cpu_ms": round((time.process_time() - mine) / n * 1e3, 3),
    }


def bare_app(data_dir: str) -> Any:
    """The hub's app with ``POST /api/v1/models/{id}/metrics`` answered inline, ahead of it."""
    from starlette.datastructures import Headers

    from trainhub.server.app import create_app
    from trainhub.server.auth import key_from_headers
    from trainhub.server.schemas import MetricsBatchIn
    from trainhub.server.services import metrics as svc
    from trainhub.server.services.keys import bootstrap_admin
    from trainhub.server.settings import ServerSettings

    settings = ServerSettings(data_dir=Path(data_dir))
    app = create_app(settings)
    # As ``trainhub serve`` does before it serves: migrate, register TRAINHUB_ADMIN_KEY.
    app.state.store.migrate()
    bootstrap_admin(app.state.store, settings.admin_key_value())
    auth, store = app.state.authenticator, app.state.store

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        match = _METRICS_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        key = key_from_headers(Headers(scope=scope)) or ""
        status, out = 401, b"{}"
        if auth.authenticate_key(key) is not None:
            body, more = b"", True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = bool(message.get("more_body", False))
            reply = svc.put_metrics(store, match.group(1), MetricsBatchIn.model_validate_json(body))
            status, out = 200, json.dumps(reply).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    return bare


@contextmanager
def bare_server(tmp: Path) -> Iterator[peers.Server]:
    """:func:`bare_app` under uvicorn (``python -m benchmarks.epoch_cost serve-bare PORT DIR``)."""
    data = tmp / "bare"
    data.mkdir(parents=True, exist_ok=True)
    port = peers.free_port()
    cmd = [sys.executable, "-m", "benchmarks.epoch_cost", "serve-bare", str(port), str(data)]
    env = peers.bench_env(TRAINHUB_ADMIN_KEY=peers.ADMIN_KEY, TRAINHUB_RATE_LIMIT_RPS="0")
    with peers._spawn("bare", cmd, "/api/v1/health", port, data, env) as server:
        server.headers = {"authorization": f"Bearer {peers.ADMIN_KEY}"}
        yield server


def _serve_bare(port: int, data_dir: str) -> None:
    import uvicorn

    uvicorn.run(bare_app(data_dir), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def in_process(epochs: int) -> dict[str, Any]:
    """``write`` and ``replaced`` (see the module docstring), on a fresh SQLite store."""
    from trainhub.server.auth import Principal
    from trainhub.server.backends import open_store
    from trainhub.server.schemas import MetricsBatchIn, ModelCreateIn
    from trainhub.server.services import metrics as svc
    from trainhub.server.services import models as model_svc
    from trainhub.server.store import charts
    from trainhub.server.store import metrics as q

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/hub.db")
        store.migrate()
        admin = Principal(key_id="k", name="bench", is_admin=True, user_admin=True)

        def four_levels(conn: Any, dialect: str, model_id: str, points: Any, *_: Any) -> None:
            rows = [r for r in charts._single_point_rows(model_id, points) if r[2] < 4]
            conn.exec_driver_sql(charts._merge_rollup_sql(dialect), rows)

        variants: dict[str, Callable[..., None]] = {
            "full": q.add_points,
            "no_rollups": lambda *_a, **_k: None,
            "rollups_4_levels": four_levels,
        }
        original = q.add_points
        out["write"] = {}
        try:
            for name, add_points in variants.items():
                q.add_points = add_points  # type: ignore[assignment]
                model_id = f"epoch-{name}".replace("_", "-")
                model_svc.create_model(store, admin, model_id, ModelCreateIn(name=model_id), "")
                batches = [
                    MetricsBatchIn.model_validate_json(
                        json.dumps({"epochs": [{"epoch": e, "metrics": epoch_metrics(e)}]})
                    )
                    for e in range(epochs)
                ]
                times = []
                for batch in batches:
                    t0 = time.perf_counter()
                    svc.put_metrics(store, model_id, batch)
                    times.append(time.perf_counter() - t0)
                out["write"][name] = {"p50_ms": round(statistics.median(times[50:]) * 1e3, 3)}
        finally:
            q.add_points = original

        model_svc.create_model(store, admin, "replaced", ModelCreateIn(name="replaced"), "")
        names = [f"ingest/m{i}" for i in range(10)]
        for lo in range(0, 30_000, 100):
            with store.write() as conn:
                q.upsert_series(
                    conn, store.dialect, "replaced", {(n, s): 1.0 for s in range(lo, lo + 100) for n in names}
                )
        batch = {(n, s): 1.0 for s in range(30_000, 30_100) for n in names}
        out["replaced"] = {}
        with store.read() as conn:
            for label, find in (("per_point_probe", q._probe), ("per_series_shortcut", q._stored)):
                times = []
                for _ in range(200):
                    t0 = time.perf_counter()
                    find(conn, "replaced", batch)
                    times.append(time.perf_counter() - t0)
                out["replaced"][label] = {"p50_ms": round(statistics.median(times) * 1e3, 3)}
        store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve-bare"]:
        _serve_bare(int(args[1]), args[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1_500, help="one-epoch POSTs per server")
    parser.add_argument("--epochs", type=int, default=600, help="epochs written per in-process variant")
    parser.add_argument(
        "--only",
        type=lambda v: {w.strip() for w in v.split(",") if w.strip()},
        default={"http", "write", "replaced"},
        help="sections to run (default: all)",
    )
    opts = parser.parse_args(args)
    if opts.requests <= 50 or opts.epochs <= 50:
        parser.error("--requests and --epochs must be over 50 (the first 50 are a warm-up)")
    results: dict[str, Any] = {"command": "python -m benchmarks.epoch_cost " + " ".join(args), "http": {}}
    if "http" in opts.only:
        with tempfile.TemporaryDirectory(prefix="trainhub-epoch-cost-") as d:
            tmp = Path(d)
            with peers.trainhub_server(tmp) as server:
                target = TrainhubTarget("trainhub", server.url, server.headers)
                results["http"]["trainhub"] = http_epochs(server, target, opts.requests)
            with bare_server(tmp) as server:
                target = TrainhubTarget("bare", server.url, server.headers)
                results["http"]["bare"] = http_epochs(server, target, opts.requests)
            with peers.floor_server(tmp) as server:
                results["http"]["floor"] = http_epochs(server, FloorTarget(server.url), opts.requests)
    if opts.only & {"write", "replaced"}:
        results.update(in_process(opts.epochs))
    for section in ("http", "write", "replaced"):
        for name, figures in results.get(section, {}).items():
            print(f"{section:8s} {name:20s} {figures}", file=sys.stderr)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
