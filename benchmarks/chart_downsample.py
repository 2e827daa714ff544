"""Server time to downsample a 1,000,000-point metric series for a chart.

    python -m benchmarks.chart_downsample [--points 1000000] [--repeat 20] [--json out.json]

Builds a real SQLite store (migrations applied, in a temp dir), writes one series of N points
through the same ``upsert_points`` the API uses (batches of 1,000 epochs, the protocol's maximum
per request; this also maintains the chart rollups), then times, on this process's thread:

* ``read_series``: what ``GET /api/v1/models/{id}/charts/series`` runs (min/max buckets over the
  rollups, <= 1,500 points keeping the min and max): p50 / min / max of ``--repeat`` calls;
* ``chart_data``: what the model page polls (``GET /api/v1/models/{id}/charts``), same series;
* ``epoch_tail`` (the page's table of the last 100 epochs) and ``get_model`` (the page's header);
* for reference, once each, the two ways that read every point: min/max buckets in one SQL
  ``GROUP BY`` over the raw points, and fetching every point into a Python loop.

It also reports the write cost of the rollups: the same batches written with and without them,
and one epoch of 15 metrics per transaction (what a training run sends).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from trainhub.server.schemas import ModelCreateIn
from trainhub.server.services import charts
from trainhub.server.services import models as model_svc
from trainhub.server.store import charts as rollups
from trainhub.server.store.engine import Store, sqlite_engine
from trainhub.server.store.metrics import upsert_points
from trainhub.server.store.tables import metric_points

NAME = "train/loss"
BATCH = 1_000


def value(step: int) -> float:
    return math.exp(-step / 300_000) + 0.05 * math.sin(step * 0.37)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def ingest(store: Store, model_id: str, points: int, with_rollups: bool) -> float:
    started = time.perf_counter()
    for lo in range(0, points, BATCH):
        rows = [
            {"model_id": model_id, "name": NAME, "step": s, "value": value(s)}
            for s in range(lo, min(points, lo + BATCH))
        ]
        with store.write() as conn:
            if with_rollups:
                upsert_points(conn, store.dialect, rows)
            else:  # the raw upsert alone, for the cost of the rollups
                stmt = sa.dialects.sqlite.insert(metric_points)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["model_id", "name", "step"], set_={"value": stmt.excluded.value}
                )
                conn.execute(stmt, rows)
    return time.perf_counter() - started


def per_epoch(store: Store, model_id: str, epochs: int, with_rollups: bool) -> float:
    """Median seconds to write one epoch of 15 metrics in its own transaction."""
    names = [f"train/m{i}" for i in range(15)]
    times = []
    for epoch in range(epochs):
        rows = [{"model_id": model_id, "name": n, "step": epoch, "value": value(epoch)} for n in names]
        started = time.perf_counter()
        with store.write() as conn:
            if with_rollups:
                upsert_points(conn, store.dialect, rows)
            else:
                stmt = sa.dialects.sqlite.insert(metric_points)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["model_id", "name", "step"], set_={"value": stmt.excluded.value}
                )
                conn.execute(stmt, rows)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def timed(fn: Any, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return {"p50_ms": ms(statistics.median(times)), "min_ms": ms(min(times)), "max_ms": ms(max(times))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="trainhub-bench-") as tmp:
        store = Store(sqlite_engine(f"sqlite:///{Path(tmp) / 'hub.db'}"))
        store.migrate()
        for model_id in ("bench", "raw-only", "epochs", "epochs-raw"):
            model_svc.create_model(store, model_id, ModelCreateIn(name=model_id), "")
        ingest_with = ingest(store, "bench", args.points, with_rollups=True)
        ingest_without = ingest(store, "raw-only", args.points, with_rollups=False)

        series = charts.read_series(store, "bench", NAME)
        result: dict[str, Any] = {
            "points": args.points,
            "returned_points": len(series["steps"]),
            "keeps_min_and_max": min(series["values"]) == series["min"]
            and max(series["values"]) == series["max"],
            "read_series": timed(lambda: charts.read_series(store, "bench", NAME), args.repeat),
            "chart_data": timed(lambda: charts.chart_data(store, "bench"), args.repeat),
            "epoch_table_last_100": timed(lambda: charts.epoch_tail(store, "bench", 100), args.repeat),
            # Not chart code: the model header's best metrics, a GROUP BY over every raw point.
            "get_model": timed(lambda: model_svc.get_model(store, "bench", ""), 3),
        }

        width = args.points // 750 + 1
        with store.read() as conn:
            started = time.perf_counter()
            conn.exec_driver_sql(
                "SELECT step / ?, min(value), max(value) FROM metric_points"
                " WHERE model_id = ? AND name = ? GROUP BY step / ?",
                (width, "bench", NAME, width),
            ).fetchall()
            result["sql_group_by_over_raw_points_ms"] = ms(time.perf_counter() - started)
            started = time.perf_counter()
            lo_hi: dict[int, list[float]] = {}
            for step, v in rollups.read_raw(conn, "bench", NAME):
                b = step // width
                cur = lo_hi.get(b)
                if cur is None:
                    lo_hi[b] = [v, v]
                elif v < cur[0]:
                    cur[0] = v
                elif v > cur[1]:
                    cur[1] = v
            result["python_loop_over_raw_points_ms"] = ms(time.perf_counter() - started)
        result["ingest_s"] = {
            "with_rollups": round(ingest_with, 2),
            "raw_points_only": round(ingest_without, 2),
            "per_1000_point_batch_ms": {
                "with_rollups": ms(ingest_with / (args.points / BATCH)),
                "raw_points_only": ms(ingest_without / (args.points / BATCH)),
            },
        }
        result["one_epoch_of_15_metrics_ms"] = {
            "with_rollups": ms(per_epoch(store, "epochs", 300, with_rollups=True)),
            "raw_points_only": ms(per_epoch(store, "epochs-raw", 300, with_rollups=False)),
        }
        store.close()

    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
