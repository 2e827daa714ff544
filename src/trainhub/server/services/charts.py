"""Chart data: downsampled series, Ultralytics-style chart groups, the epoch table, comparisons.

Downsampling is min/max buckets over the rollups of ``store/charts.py``: a series longer than
``max_points`` is cut into at most ``(max_points - 2) // 2`` consecutive step ranges and each range
contributes its smallest and largest value (at their own steps), plus the series' first and last
points so the line spans the whole run. So the result never has more than ``max_points`` points
and always holds the series' global min and max. A read costs a few thousand rollup rows whatever
the series' length (see ``benchmarks/chart_downsample.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from trainhub.server.services.models import require_model
from trainhub.server.store import charts as q
from trainhub.server.store.dialects import lock_key
from trainhub.server.store.engine import Store

__all__ = [
    "DEFAULT_MAX_POINTS",
    "MAX_MAX_POINTS",
    "MIN_MAX_POINTS",
    "chart_data",
    "chart_groups",
    "compare",
    "downsample",
    "epoch_tail",
    "read_series",
]

#: Points per series a chart asks for (W&B draws ~1,000 per line; a wide screen has ~1,500 px).
DEFAULT_MAX_POINTS = 1500
MIN_MAX_POINTS = 10
MAX_MAX_POINTS = 10_000

_METRIC_SUFFIXES = (("(B)", "Metrics (B)"), ("(M)", "Metrics (M)"), ("(P)", "Metrics (P)"))


def chart_groups(names: Sequence[str]) -> list[dict[str, Any]]:
    """Group series like Ultralytics' results plot: train losses, val losses, metrics by suffix
    (B)ox / (M)ask / (P)ose, other metrics, learning rates, then everything else.

    Returns ``[{"id", "title", "names"}]`` in that order, only non-empty groups.
    """
    order = [
        ("train", "Train losses"),
        ("val", "Val losses"),
        *((f"metrics-{s[1].lower()}", title) for s, title in _METRIC_SUFFIXES),
        ("metrics", "Metrics"),
        ("lr", "Learning rate"),
        ("other", "Other"),
    ]
    found: dict[str, list[str]] = {gid: [] for gid, _ in order}
    for name in sorted(names):
        if name.startswith("train/"):
            gid = "train"
        elif name.startswith("val/"):
            gid = "val"
        elif name.startswith("metrics/"):
            gid = next(
                (f"metrics-{s[1].lower()}" for s, _ in _METRIC_SUFFIXES if name.endswith(s)), "metrics"
            )
        elif name.startswith("lr/"):
            gid = "lr"
        else:
            gid = "other"
        found[gid].append(name)
    return [{"id": gid, "title": title, "names": found[gid]} for gid, title in order if found[gid]]


def _catalog(store: Store, model_id: str) -> dict[str, q.Bucket]:
    with store.read() as conn:
        require_model(conn, model_id)
        cat = q.catalog(conn, model_id)
        if cat or not q.has_points(conn, model_id):
            return cat
    # Points stored before rollups existed: roll them up once, then read as usual.
    with store.write() as conn:
        lock_key(conn, store.dialect, f"metrics:{model_id}")  # as store.metrics.upsert_points does
        if not q.catalog(conn, model_id):
            q.rebuild_rollups(conn, store.dialect, model_id)
        return q.catalog(conn, model_id)


def _choose_level(first: int, last: int, buckets: int) -> tuple[int, int]:
    """The finest level with at most ``8 * buckets`` buckets over [first, last], and its bucket count.

    Eight rollup rows per output bucket at most: a few thousand rows read, and fine enough that
    the output buckets are all about the same width.
    """
    for level in range(q.LEVELS):
        w = q.level_width(level)
        nb = last // w - first // w + 1
        if nb <= 8 * buckets:
            return level, nb
    w = q.level_width(q.LEVELS - 1)
    return q.LEVELS - 1, last // w - first // w + 1


def downsample(
    conn: Connection, model_id: str, name: str, summary: q.Bucket, max_points: int
) -> dict[str, Any]:
    """One series as ``{"name", "steps", "values", "count", "downsampled", "min", "max"}``.

    At most ``max_points`` points; the global min and max are always among them.
    """
    out: dict[str, Any] = {
        "name": name,
        "count": summary.n,
        "min": summary.min_value,
        "max": summary.max_value,
        "first_step": summary.first_step,
        "last_step": summary.last_step,
    }
    if summary.n <= max_points:
        pairs = q.read_raw(conn, model_id, name)
        return {**out, "steps": [s for s, _ in pairs], "values": [v for _, v in pairs], "downsampled": False}
    buckets = max(1, (max_points - 2) // 2)
    level, nb = _choose_level(summary.first_step, summary.last_step, buckets)
    base = summary.first_step // q.level_width(level)
    groups: dict[int, list[q.Bucket]] = {}
    for b in q.read_level(conn, model_id, name, level):
        # Spread the nb rollup buckets evenly over the output buckets (indexes 0 .. buckets - 1).
        groups.setdefault((b.bucket - base) * buckets // nb, []).append(b)
    points: dict[int, float] = {}
    for gi, parts in groups.items():
        merged = q.merge(gi, parts)
        if merged is None:
            continue
        if merged.min_step is not None and merged.min_value is not None:
            points[merged.min_step] = merged.min_value
        if merged.max_step is not None and merged.max_value is not None:
            points[merged.max_step] = merged.max_value
    for step in (summary.first_step, summary.last_step):
        for s, v in q.read_raw_range(conn, model_id, name, step, step):
            if v is not None:
                points[s] = v
    steps = sorted(points)
    return {**out, "steps": steps, "values": [points[s] for s in steps], "downsampled": True}


def read_series(
    store: Store, model_id: str, name: str, max_points: int = DEFAULT_MAX_POINTS
) -> dict[str, Any]:
    """One series, downsampled to at most ``max_points`` (empty lists for an unknown name)."""
    cat = _catalog(store, model_id)
    summary = cat.get(name)
    if summary is None:
        return {
            "name": name,
            "steps": [],
            "values": [],
            "count": 0,
            "downsampled": False,
            "min": None,
            "max": None,
        }
    with store.read() as conn:
        return downsample(conn, model_id, name, summary, max_points)


def _version(updated_at: Any, cat: Mapping[str, q.Bucket], max_points: int) -> str:
    total = sum(b.n for b in cat.values())
    last = max((b.last_step for b in cat.values()), default=-1)
    return f"{updated_at}-{len(cat)}-{total}-{last}-{max_points}"


def chart_version(store: Store, model_id: str, max_points: int = DEFAULT_MAX_POINTS) -> str:
    """A tag that changes whenever :func:`chart_data` would (an ETag: cheap, no series read)."""
    cat = _catalog(store, model_id)
    with store.read() as conn:
        model = require_model(conn, model_id)
    return _version(model["updated_at"], cat, max_points)


def chart_data(store: Store, model_id: str, max_points: int = DEFAULT_MAX_POINTS) -> dict[str, Any]:
    """Every series of a model, downsampled, with its chart groups and a version tag.

    Returns ``{"model_id", "version", "last_step", "groups": [{"id", "title", "names"}],
    "series": {name: series}}``.
    """
    cat = _catalog(store, model_id)
    with store.read() as conn:
        model = require_model(conn, model_id)
        series = {name: downsample(conn, model_id, name, s, max_points) for name, s in cat.items()}
    return {
        "model_id": model_id,
        "version": _version(model["updated_at"], cat, max_points),
        "last_step": max((b.last_step for b in cat.values()), default=None),
        "groups": chart_groups(list(cat)),
        "series": series,
    }


def epoch_tail(store: Store, model_id: str, limit: int = 100) -> dict[str, Any]:
    """The last ``limit`` epochs as ``{"columns", "epochs": [{"epoch", "metrics"}], "total"}``.

    ``total`` is the number of epochs of the longest series.
    """
    cat = _catalog(store, model_id)
    if not cat:
        return {"columns": [], "epochs": [], "total": 0}
    last = max(b.last_step for b in cat.values())
    with store.read() as conn:
        points = q.read_tail(conn, model_id, list(cat), last - limit + 1)
    epochs: list[dict[str, Any]] = []
    for step, name, value in points:
        if not epochs or epochs[-1]["epoch"] != step:
            epochs.append({"epoch": step, "metrics": {}})
        epochs[-1]["metrics"][name] = value
    return {"columns": list(cat), "epochs": epochs, "total": max(b.n for b in cat.values())}


def _final_metrics(store: Store, model: Mapping[str, Any]) -> dict[str, float | None]:
    final: dict[str, float | None] = dict(model.get("final_metrics") or {})
    if final:
        return final
    tail = epoch_tail(store, model["id"], limit=1)["epochs"]
    if not tail:
        return {}
    return {k: v for k, v in tail[-1]["metrics"].items() if k.startswith("metrics/")}


def _differing_args(models: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    keys = sorted({k for m in models for k in (m.get("config") or {})})
    rows = []
    for key in keys:
        values = [(m.get("config") or {}).get(key, None) for m in models]
        present = [key in (m.get("config") or {}) for m in models]
        rendered = {json.dumps(v, sort_keys=True, default=str) for v in values}
        if len(rendered) > 1 or not all(present):
            rows.append(
                {"key": key, "values": ["-" if not p else v for v, p in zip(values, present, strict=True)]}
            )
    return rows


def compare(
    store: Store,
    models: Sequence[Mapping[str, Any]],
    metric: str | None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> dict[str, Any]:
    """Compare models (API views of :func:`~trainhub.server.services.models.get_model`).

    Returns ``{"metrics": all series names, "metric": the chosen one, "series": [{"id", "name",
    "steps", "values"}], "final": {"columns", "rows": [{"id", "name", "values"}]}, "args": [{"key",
    "values"}]}``. The default metric is the first ``metrics/mAP50-95*``, else the first ``metrics/*``,
    else the first name.
    """
    cats = {m["id"]: _catalog(store, m["id"]) for m in models}
    names = sorted({n for c in cats.values() for n in c})
    if metric not in names:
        metric = next(
            (n for n in names if n.startswith("metrics/mAP50-95")),
            next((n for n in names if n.startswith("metrics/")), names[0] if names else None),
        )
    series: list[dict[str, Any]] = []
    if metric is not None:
        with store.read() as conn:
            for m in models:
                summary = cats[m["id"]].get(metric)
                data = (
                    downsample(conn, m["id"], metric, summary, max_points)
                    if summary is not None
                    else {"steps": [], "values": []}
                )
                series.append(
                    {"id": m["id"], "name": m["name"], "steps": data["steps"], "values": data["values"]}
                )
    finals = [(m, _final_metrics(store, m)) for m in models]
    columns = sorted({k for _, f in finals for k in f})
    final_rows = [
        {"id": m["id"], "name": m["name"], "values": [f.get(c) for c in columns]} for m, f in finals
    ]
    return {
        "metrics": names,
        "metric": metric,
        "series": series,
        "final": {"columns": columns, "rows": final_rows},
        "args": _differing_args(models),
    }
