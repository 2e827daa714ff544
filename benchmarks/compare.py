"""trainhub side by side with MLflow (and W&B offline): the same workloads, one table of figures.

    python -m benchmarks.compare [--quick] [--only ingest,epoch,thread,import,upload,read,footprint]
                                 [--json FILE] [--pg-url URL | --no-pg] [--no-peers]

Installs nothing: MLflow and wandb are used if importable (``pip install -e '.[bench]'``), else
their columns say ``n/a``. Every server runs on 127.0.0.1 in a temp dir: ``trainhub serve`` on
SQLite; ``mlflow server`` (its defaults) on SQLite with a local artifact dir; and, if PostgreSQL
answers at ``--pg-url`` (default ``postgresql://postgres@127.0.0.1:5432/test``, or
``TRAINHUB_BENCH_PG_URL``), ``trainhub serve`` on a fresh ``bench_<random>`` database, dropped
afterwards. wandb runs offline only (``WANDB_MODE=offline``): it never contacts a host.

Workloads (figures are medians/percentiles of wall time on this machine; see docs/benchmarks.md):

1. ``ingest``: metric points/s, batches of 1,000 points (10 metrics x 100 steps), 1 and 4
   concurrent clients (threads, one run and one kept-alive connection each) sending 100k points
   in all (20k with ``--quick``); trainhub's ``POST /models/{id}/metrics`` vs MLflow's
   ``runs/log-batch``.
2. ``epoch``: latency of one 15-metric epoch per request over a kept-alive connection (first
   request apart; p50/p99 over the others, where a missing TCP_NODELAY would show as >= 40 ms);
   for trainhub also through its own client transport (httpx, as the worker thread sends); and
   against the floor (:mod:`benchmarks.floor`): a do-nothing ASGI app under the same uvicorn, the
   fastest any server on this Python stack could answer (not a peer: its own column, no goal).
3. ``thread``: training-thread cost per log call (:mod:`benchmarks.clientside`).
4. ``import``: ``import trainhub`` / ``mlflow`` / ``wandb`` in fresh interpreters, median of N.
5. ``upload``: one checkpoint file (1 GiB; 64 MiB with ``--quick``): MB/s, client and server RSS
   growth; trainhub vs ``mlflow.log_artifact`` vs a raw streaming PUT (:mod:`benchmarks.rawput`).
6. ``read``: a 100k-point series (10k with ``--quick``), full and downsampled.
7. ``footprint``: server start (spawn to first 200 on its health endpoint) and idle RSS of all
   its processes.

The table's ratio column is trainhub / peer for each peer present; the goal column checks the
goals of issue 10 (``yes``/``NO``/blank when a figure is missing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks import peers, workloads

WORKLOADS = ("ingest", "epoch", "thread", "import", "upload", "read", "footprint")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


class Sizes:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.ingest_points = 20_000 if quick else 100_000  # per run, split among the clients
        self.epoch_requests = 60 if quick else 500
        self.thread_epochs = 40 if quick else 300
        self.epoch_seconds = 0.005 if quick else 0.01
        self.import_runs = 2 if quick else 7
        self.upload_bytes = (64 if quick else 1024) * 1024 * 1024
        self.read_points = 10_000 if quick else 100_000
        self.read_repeat = 3 if quick else 5
        self.idle_seconds = 1.0 if quick else 3.0


def log(message: str) -> None:
    print(f"[compare] {message}", file=sys.stderr, flush=True)


def _run_json(cmd: list[str], timeout: float, cwd: Path | None = None) -> dict[str, Any]:
    """Run a benchmark subprocess; its last stdout line is a JSON object."""
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=peers.bench_env(),
        cwd=cwd or Path(__file__).resolve().parents[1],
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:5])} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _clientside(*args: str, timeout: float = 1800) -> dict[str, Any]:
    return _run_json([sys.executable, "-m", "benchmarks.clientside", *args], timeout)


# -- measurements per server --------------------------------------------------------------------


def footprint(server: peers.Server, idle_s: float) -> dict[str, Any]:
    time.sleep(idle_s)  # let start-up work (migrations, workers forking, caches) settle
    return {
        "start_s": round(server.started_s, 3),
        "idle_rss_mb": round(server.rss_bytes() / 1e6, 1),
        "processes": server.processes(),
    }


def run_server_workloads(
    target: workloads.Target,
    server: peers.Server,
    only: set[str],
    sizes: Sizes,
    tmp: Path,
    key: str = "",
    label: str | None = None,
) -> dict[str, Any]:
    """Every server-side workload in ``only`` against one running server."""
    label = label or target.name
    out: dict[str, Any] = {}
    if "footprint" in only:
        out["footprint"] = footprint(server, sizes.idle_seconds)
        log(f"{label} footprint: {out['footprint']}")
    if "ingest" in only:
        out["ingest"] = {}
        for clients in (1, 4):
            r = workloads.ingest(target, clients, sizes.ingest_points // clients)
            out["ingest"][str(clients)] = r
            log(f"{label} ingest x{clients}: {r['points_per_s']:,} points/s")
    if "epoch" in only:
        out["epoch"] = r = workloads.epoch_latency(target, sizes.epoch_requests)
        log(f"{label} epoch: p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms (first {r['first_ms']} ms)")
        if label == "trainhub":
            out["epoch_client"] = r = workloads.epoch_latency_trainhub_client(
                server.url, key, sizes.epoch_requests
            )
            log(f"{label} epoch via trainhub's client transport: p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms")
    if "read" in only:
        run = workloads.write_series(target, sizes.read_points)
        out["read"] = r = workloads.read_series(target, run, sizes.read_points, sizes.read_repeat)
        log(f"{label} read: full {r['full']['p50_ms']} ms, downsampled {r['downsampled']['p50_ms']} ms")
    if "upload" in only and label in ("trainhub", "mlflow"):
        out["upload"] = upload(label, server, target, tmp, sizes, key)
    return out


def _big_file(tmp: Path, size: int) -> Path:
    path = tmp / "checkpoint.bin"
    if not path.exists() or path.stat().st_size != size:
        block = os.urandom(1 << 20)
        with path.open("wb") as f:
            for i in range(size >> 20):
                f.write(block[i % 256 :] + block[: i % 256])  # distinct blocks, one random source
    return path


def upload(peer: str, server: peers.Server, target: Any, tmp: Path, sizes: Sizes, key: str) -> dict[str, Any]:
    file = _big_file(tmp, sizes.upload_bytes)
    model_id = ""
    if peer == "trainhub":
        with workloads.http_client(target.headers, 60) as client:
            model_id = target.create_run(client, "upload")
    with peers.RssSampler(server.proc.pid) as sampler:
        if peer == "trainhub" and _upload_role_available():
            r = _trainhub_worker_upload(server.url, file, model_id, tmp)
        else:
            r = _clientside("upload", peer, server.url, str(file), key, model_id)
    r["server_rss_growth_mb"] = round(max(0, sampler.peak - sampler.baseline) / 1e6, 1)
    log(f"{peer} upload: {r}")
    return r


def _upload_role_available() -> bool:
    try:
        from benchmarks import upload as upload_bench
    except ImportError:
        return False
    return hasattr(upload_bench, "trainhub_client")


def _trainhub_worker_upload(url: str, file: Path, model_id: str, tmp: Path) -> dict[str, Any]:
    """The client role of benchmarks/upload.py: the real worker delivering one spooled checkpoint
    (hash, upload session, parts, complete), timed from start to acknowledged."""
    spool = Path(tempfile.mkdtemp(prefix="upload-spool-", dir=tmp))
    r = _run_json(
        [sys.executable, "-m", "benchmarks.upload", "trainhub-client", url, str(file), model_id, str(spool)],
        1800,
    )
    size = file.stat().st_size
    return {
        "peer": "trainhub",
        "ok": True,
        "bytes": size,
        "seconds": round(r["seconds"], 3),
        "mb_per_s": round(size / 1e6 / r["seconds"], 1),
        "via": "benchmarks/upload.py worker",
        "client_rss_growth_mb": round((r["rss_peak_kib"] - r["rss_base_kib"]) * 1024 / 1e6, 1),
        **{k: v for k, v in r.items() if k in ("parts_sent", "bytes_sent")},
    }


def thread_cost(peer: str, url: str, sizes: Sizes, tmp: Path, key: str = "") -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix=f"{peer}-", dir=tmp))
    r = _clientside("thread-cost", peer, url, str(sizes.thread_epochs), str(sizes.epoch_seconds), str(d), key)
    log(f"{peer} thread cost: p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms max {r['max_ms']} ms")
    return r


def import_time(module: str, runs: int) -> dict[str, Any]:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times: list[float] = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=peers.bench_env()
        )
        if proc.returncode != 0:
            raise RuntimeError(f"import {module} failed: {proc.stderr[-800:]}")
        times.append(float(proc.stdout.strip().splitlines()[-1]))
    return {"runs": runs, "median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4)}


# -- the whole comparison -----------------------------------------------------------------------


def _guard(results: dict[str, Any], key: str, fn: Callable[[], Any]) -> None:
    """Run one measurement; a failure is recorded (and shown in the table), not fatal."""
    try:
        results[key] = fn()
    except Exception as exc:
        log(f"{key} failed: {type(exc).__name__}: {exc}")
        results.setdefault("errors", {})[key] = f"{type(exc).__name__}: {exc}"[:2000]


@contextmanager
def _pg_url(args: argparse.Namespace, results: dict[str, Any]) -> Iterator[str | None]:
    if args.no_pg:
        results["skipped"].setdefault("trainhub-pg", "--no-pg")
        yield None
        return
    why = peers.postgres_reachable(args.pg_url)
    if why:
        results["skipped"]["trainhub-pg"] = f"PostgreSQL not reachable at {args.pg_url}: {why}"
        yield None
        return
    with peers.postgres_database(args.pg_url) as url:
        yield url


def run(args: argparse.Namespace) -> dict[str, Any]:
    only = set(args.only)
    sizes = Sizes(args.quick)
    have_mlflow = peers.mlflow_available() and not args.no_peers
    have_wandb = peers.wandb_available() and not args.no_peers
    if args.no_peers:
        args.no_pg = True
    results: dict[str, Any] = {
        "command": "python -m benchmarks.compare " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "versions": _versions(),
        "sizes": vars(sizes),
        "skipped": {},
    }
    if args.no_peers:
        results["skipped"]["peers"] = "--no-peers"
    if not have_mlflow and not args.no_peers:
        results["skipped"]["mlflow"] = "mlflow is not installed (pip install -e '.[bench]')"
    if not have_wandb and not args.no_peers:
        results["skipped"]["wandb"] = "wandb is not installed (pip install -e '.[bench]')"
    server_side = only & {"ingest", "epoch", "read", "upload", "footprint", "thread"}
    with tempfile.TemporaryDirectory(prefix="trainhub-compare-") as d:
        tmp = Path(d)
        if "import" in only:
            mods = ["trainhub"] + (["mlflow"] if have_mlflow else []) + (["wandb"] if have_wandb else [])
            for mod in mods:
                _guard(results, f"import.{mod}", lambda mod=mod: import_time(mod, sizes.import_runs))
        if server_side:
            log("trainhub (SQLite)")
            try:
                with peers.trainhub_server(tmp) as server:
                    target = workloads.TrainhubTarget("trainhub", server.url, server.headers)
                    _guard(
                        results,
                        "trainhub",
                        lambda: run_server_workloads(target, server, only, sizes, tmp, peers.ADMIN_KEY),
                    )
                    if "thread" in only:
                        _guard(
                            results,
                            "thread.trainhub",
                            lambda: thread_cost("trainhub", server.url, sizes, tmp, peers.ADMIN_KEY),
                        )
            except Exception as exc:
                results.setdefault("errors", {})["trainhub"] = f"{type(exc).__name__}: {exc}"[:2000]
                log(f"trainhub failed: {exc}")
        if "epoch" in only:
            try:
                with peers.floor_server(tmp) as server:
                    _guard(
                        results,
                        "floor",
                        lambda: {
                            "epoch": workloads.epoch_latency(
                                workloads.FloorTarget(server.url), sizes.epoch_requests
                            )
                        },
                    )
                    log(f"floor epoch: p50 {_get(results, 'floor', 'epoch', 'p50_ms')} ms")
            except Exception as exc:
                results.setdefault("errors", {})["floor"] = f"{type(exc).__name__}: {exc}"[:2000]
        if only & {"ingest", "epoch"}:
            with ExitStack() as stack:
                try:
                    url = stack.enter_context(_pg_url(args, results))
                    if url:
                        log("trainhub (PostgreSQL)")
                        pg_only = only & {"ingest", "epoch", "footprint"}
                        server = stack.enter_context(peers.trainhub_server(tmp, url, name="trainhub-pg"))
                        target = workloads.TrainhubTarget("trainhub-pg", server.url, server.headers)
                        _guard(
                            results,
                            "trainhub-pg",
                            lambda: run_server_workloads(target, server, pg_only, sizes, tmp),
                        )
                except Exception as exc:
                    results.setdefault("errors", {})["trainhub-pg"] = f"{type(exc).__name__}: {exc}"[:2000]
                    log(f"trainhub-pg failed: {exc}")
        if have_mlflow and server_side:
            log("mlflow server (SQLite)")
            try:
                with peers.mlflow_server(tmp) as server:
                    target = workloads.MlflowTarget(server.url)
                    _guard(results, "mlflow", lambda: run_server_workloads(target, server, only, sizes, tmp))
                    if "thread" in only:
                        for mode in ("mlflow-sync", "mlflow-async"):
                            _guard(
                                results,
                                f"thread.{mode}",
                                lambda mode=mode: thread_cost(mode, server.url, sizes, tmp),
                            )
            except Exception as exc:
                results.setdefault("errors", {})["mlflow"] = f"{type(exc).__name__}: {exc}"[:2000]
                log(f"mlflow failed: {exc}")
        if have_wandb and "thread" in only:
            _guard(results, "thread.wandb", lambda: thread_cost("wandb", "offline", sizes, tmp))
        if "upload" in only and not args.no_peers:
            try:
                with peers.raw_put_server(tmp) as server:
                    _guard(
                        results,
                        "raw-put",
                        lambda: {"upload": upload("raw-put", server, None, tmp, sizes, "")},
                    )
            except Exception as exc:
                results.setdefault("errors", {})["raw-put"] = f"{type(exc).__name__}: {exc}"[:2000]
    results["rows"] = table_rows(results)
    return results


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("trainhub", "mlflow", "wandb", "fastapi", "uvicorn", "sqlalchemy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


# -- the table ----------------------------------------------------------------------------------

COLUMNS = ("trainhub", "trainhub-pg", "mlflow", "mlflow-async", "wandb", "raw-put", "floor")


def _get(results: dict[str, Any], *path: str) -> Any:
    cur: Any = results
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def table_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: values per system, ratios trainhub / peer, the goal and whether it is met."""
    rows: list[dict[str, Any]] = []

    def row(
        metric: str,
        unit: str,
        values: dict[str, Any],
        goal: str = "",
        met: Callable[[dict[str, float]], bool] | None = None,
    ) -> None:
        vals = {k: v for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        th = vals.get("trainhub")
        ratios = {k: round(th / v, 4) for k, v in vals.items() if k != "trainhub" and th is not None and v}
        ok: bool | None = None
        if met is not None:
            try:
                ok = bool(met(vals))
            except (KeyError, ZeroDivisionError, TypeError):
                ok = None
        rows.append(
            {"metric": metric, "unit": unit, "values": vals, "ratio": ratios, "goal": goal, "met": ok}
        )

    for c in ("1", "4"):
        row(
            f"ingest, {c} client{'s' if c == '4' else ''}",
            "points/s",
            {
                "trainhub": _get(res, "trainhub", "ingest", c, "points_per_s"),
                "trainhub-pg": _get(res, "trainhub-pg", "ingest", c, "points_per_s"),
                "mlflow": _get(res, "mlflow", "ingest", c, "points_per_s"),
            },
            ">= 10x mlflow" + (", > 1 client" if c == "4" else ""),
            (lambda v: v["trainhub"] >= 10 * v["mlflow"])
            if c == "1"
            else (
                lambda v: (
                    v["trainhub"] >= 10 * v["mlflow"]
                    and v["trainhub"] > (_get(res, "trainhub", "ingest", "1", "points_per_s") or float("inf"))
                )
            ),
        )
    for stat in ("p50_ms", "p99_ms"):
        row(
            f"one epoch (15 metrics) {stat[:3]}",
            "ms",
            {
                "trainhub": _get(res, "trainhub", "epoch", stat),
                "trainhub-pg": _get(res, "trainhub-pg", "epoch", stat),
                "mlflow": _get(res, "mlflow", "epoch", stat),
                "floor": _get(res, "floor", "epoch", stat),
            },
            "<= mlflow / 10" if stat == "p50_ms" else "",
            (lambda v: v["trainhub"] * 10 <= v["mlflow"]) if stat == "p50_ms" else None,
        )
    row(
        "one epoch p50 via trainhub's client (httpx)",
        "ms",
        {
            "trainhub": _get(res, "trainhub", "epoch_client", "p50_ms"),
            "mlflow": _get(res, "mlflow", "epoch", "p50_ms"),
        },
        "<= mlflow / 10",
        lambda v: v["trainhub"] * 10 <= v["mlflow"],
    )
    for stat in ("p50_ms", "p99_ms"):
        row(
            f"training-thread cost per call {stat[:3]}",
            "ms",
            {
                "trainhub": _get(res, "thread.trainhub", stat),
                "mlflow": _get(res, "thread.mlflow-sync", stat),
                "mlflow-async": _get(res, "thread.mlflow-async", stat),
                "wandb": _get(res, "thread.wandb", stat),
            },
            "< 1 ms (2 w/ fsync), <= mlflow/10, <= wandb" if stat == "p99_ms" else "",
            (
                lambda v: (
                    v["trainhub"] < 2.0
                    and v["trainhub"] * 10 <= v["mlflow"]
                    and v["trainhub"] <= v.get("wandb", float("inf"))
                )
            )
            if stat == "p99_ms"
            else None,
        )
    row(
        "import time (median)",
        "s",
        {
            "trainhub": _get(res, "import.trainhub", "median_s"),
            "mlflow": _get(res, "import.mlflow", "median_s"),
            "wandb": _get(res, "import.wandb", "median_s"),
        },
        "<= mlflow / 10",
        lambda v: v["trainhub"] * 10 <= v["mlflow"],
    )
    row(
        "checkpoint upload",
        "MB/s",
        {
            "trainhub": _get(res, "trainhub", "upload", "mb_per_s"),
            "mlflow": _get(res, "mlflow", "upload", "mb_per_s"),
            "raw-put": _get(res, "raw-put", "upload", "mb_per_s"),
        },
        ">= mlflow, >= 50% raw",
        lambda v: v["trainhub"] >= v["mlflow"] and v["trainhub"] >= 0.5 * v["raw-put"],
    )
    for side in ("client", "server"):
        row(
            f"upload RSS growth, {side}",
            "MB",
            {
                "trainhub": _get(res, "trainhub", "upload", f"{side}_rss_growth_mb"),
                "mlflow": _get(res, "mlflow", "upload", f"{side}_rss_growth_mb"),
                "raw-put": _get(res, "raw-put", "upload", f"{side}_rss_growth_mb"),
            },
            "< 100 MB",
            lambda v: v["trainhub"] < 100,
        )
    for kind, goal in (("full", "<= mlflow / 20"), ("downsampled", "")):
        row(
            f"read series ({kind})",
            "ms",
            {
                "trainhub": _get(res, "trainhub", "read", kind, "p50_ms"),
                "mlflow": _get(res, "mlflow", "read", kind, "p50_ms"),
            },
            goal,
            (lambda v: v["trainhub"] * 20 <= v["mlflow"]) if goal else None,
        )
    row(
        "server ready (spawn to first 200)",
        "s",
        {
            "trainhub": _get(res, "trainhub", "footprint", "start_s"),
            "mlflow": _get(res, "mlflow", "footprint", "start_s"),
        },
        "< 2 s",
        lambda v: v["trainhub"] < 2.0,
    )
    row(
        "idle server RSS (all processes)",
        "MB",
        {
            "trainhub": _get(res, "trainhub", "footprint", "idle_rss_mb"),
            "mlflow": _get(res, "mlflow", "footprint", "idle_rss_mb"),
        },
        "< 150 MB",
        lambda v: v["trainhub"] < 150,
    )
    row(
        "idle server processes",
        "",
        {
            "trainhub": _get(res, "trainhub", "footprint", "processes"),
            "mlflow": _get(res, "mlflow", "footprint", "processes"),
        },
    )
    return [r for r in rows if r["values"]]


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def render(results: dict[str, Any]) -> str:
    rows = results["rows"]
    cols = [c for c in COLUMNS if any(c in r["values"] for r in rows)]
    peers_with_ratio = [c for c in cols if c != "trainhub"]
    head = ["figure", "unit", *cols, *[f"th/{p}" for p in peers_with_ratio], "goal", "met"]
    body = []
    for r in rows:
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        body.append(
            [
                r["metric"],
                r["unit"],
                *[_fmt(r["values"].get(c)) for c in cols],
                *[_fmt(r["ratio"].get(p)) if p in r["ratio"] else "" for p in peers_with_ratio],
                r["goal"],
                met,
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(str(x).ljust(w) for x, w in zip(b, widths, strict=True)) + " |" for b in body]
    notes = [f"skipped {k}: {v}" for k, v in results.get("skipped", {}).items()]
    notes += [f"error in {k}: {v.splitlines()[0][:300]}" for k, v in results.get("errors", {}).items()]
    return "\n".join(lines + notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        type=lambda s: [w.strip() for w in s.split(",") if w.strip()],
        default=list(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)}",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in under a minute")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TRAINHUB_BENCH_PG_URL", DEFAULT_PG_URL),
        help="PostgreSQL server to make a bench_<random> database on",
    )
    parser.add_argument("--no-pg", action="store_true", help="skip trainhub on PostgreSQL")
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="trainhub alone (SQLite): no MLflow, wandb, PostgreSQL or raw PUT",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {','.join(WORKLOADS)}")
    os.environ.update(peers.QUIET_ENV)
    results = run(args)
    print(render(results), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
