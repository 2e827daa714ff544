"""Chart rollups and downsampling, against a real SQLite store (no server): exact, bounded, updated;
and which points of a batch replace stored ones."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from trainhub.server.auth import Principal
from trainhub.server.schemas import ModelCreateIn
from trainhub.server.services import charts
from trainhub.server.services import models as model_svc
from trainhub.server.store import charts as q
from trainhub.server.store.engine import Store, sqlite_engine
from trainhub.server.store.metrics import upsert_points, upsert_series


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(sqlite_engine(f"sqlite:///{tmp_path / 'hub.db'}"))
    s.migrate()
    admin = Principal(key_id="k1", name="test", is_admin=True, user_admin=True)
    model_svc.create_model(s, admin, "m1", ModelCreateIn(name="run"), "")
    return s


def write(store: Store, name: str, points: list[tuple[int, float | None]]) -> None:
    with store.write() as conn:
        upsert_points(
            conn, store.dialect, [{"model_id": "m1", "name": name, "step": s, "value": v} for s, v in points]
        )


def brute_buckets(points: list[tuple[int, float | None]], level: int) -> dict[int, q.Bucket]:
    w = q.level_width(level)
    out: dict[int, list[q.Bucket]] = {}
    for s, v in points:
        out.setdefault(s // w, []).append(q.Bucket(s, 1, s, s, None if v is None else s, v, s, v))
    merged = {b: q.merge(b, parts) for b, parts in out.items()}
    return {b: m for b, m in merged.items() if m is not None}


def test_rollups_match_a_brute_force_summary_after_out_of_order_and_replaced_writes(store: Store) -> None:
    rng = random.Random(7)
    truth: dict[int, float | None] = {}
    for _ in range(30):
        batch = [(rng.randrange(0, 5000), rng.choice([None, rng.uniform(-5, 5)])) for _ in range(200)]
        write(store, "train/loss", batch)
        truth.update(batch)  # a re-sent step replaces its value, in the store and here
    points = sorted(truth.items())
    with store.read() as conn:
        for level in range(q.LEVELS):
            got = {b.bucket: b for b in q.read_level(conn, "m1", "train/loss", level)}
            assert got == brute_buckets(points, level), level


def test_rollups_stay_exact_when_epochs_are_appended_one_at_a_time_with_ties_and_nulls(store: Store) -> None:
    # The write path merges new points into the stored summaries in SQL (no recompute): ties must
    # keep the earliest step and nulls must not count as a min or max, as in a brute-force summary.
    rng = random.Random(3)
    step = 0
    for _ in range(120):
        batch = []
        for _ in range(rng.choice([1, 1, 1, 7, 40])):
            batch.append((step, rng.choice([None, 0.0, 1.0, -1.0, rng.uniform(-2, 2)])))
            step += rng.choice([1, 1, 1, 3, 50])
        write(store, "val/loss", batch)
    with store.read() as conn:
        resent = rng.sample([s for s, _ in q.read_raw(conn, "m1", "val/loss")], 25)
    write(store, "val/loss", [(s, -9.0) for s in resent])  # re-sent epochs with new minima
    with store.read() as conn:
        points = q.read_raw(conn, "m1", "val/loss")
        for level in range(q.LEVELS):
            got = {b.bucket: b for b in q.read_level(conn, "m1", "val/loss", level)}
            assert got == brute_buckets(points, level), level
    assert sum(1 for _, v in points if v == -9.0) == 25


def test_a_long_series_is_downsampled_to_max_points_keeping_min_max_first_last(store: Store) -> None:
    rng = random.Random(1)
    points: list[tuple[int, float | None]] = [(s, rng.gauss(0, 1)) for s in range(20_000)]
    points[12_345] = (12_345, -50.0)
    points[777] = (777, 40.0)
    write(store, "train/loss", points)
    data = charts.read_series(store, "m1", "train/loss", max_points=300)
    assert data["downsampled"] and data["count"] == 20_000
    assert 100 < len(data["steps"]) <= 300
    assert data["steps"] == sorted(set(data["steps"]))
    pairs = dict(zip(data["steps"], data["values"], strict=True))
    assert pairs[12_345] == -50.0 and pairs[777] == 40.0
    assert data["steps"][0] == 0 and data["steps"][-1] == 19_999
    assert all(pairs[s] == dict(points)[s] for s in data["steps"])  # real points, not averages


def test_a_short_series_comes_back_whole_with_its_nulls(store: Store) -> None:
    write(store, "metrics/mAP50(B)", [(0, 0.1), (1, None), (2, 0.3)])
    data = charts.read_series(store, "m1", "metrics/mAP50(B)")
    assert data["steps"] == [0, 1, 2] and data["values"] == [0.1, None, 0.3] and not data["downsampled"]


def test_series_stored_before_rollups_are_rolled_up_on_first_read(store: Store) -> None:
    write(store, "train/loss", [(s, float(s)) for s in range(100)])
    with store.write() as conn:
        conn.exec_driver_sql("DELETE FROM metric_rollups")
    data = charts.read_series(store, "m1", "train/loss", max_points=20)
    assert data["count"] == 100 and len(data["steps"]) <= 20
    assert data["values"][0] == 0.0 and data["values"][-1] == 99.0


def test_chart_groups_follow_ultralytics_results_plot() -> None:
    names = [
        "lr/pg0",
        "metrics/mAP50(B)",
        "metrics/mAP50(M)",
        "metrics/precision(B)",
        "train/box_loss",
        "val/box_loss",
        "metrics/accuracy_top1",
        "fitness",
    ]
    groups = charts.chart_groups(names)
    assert [(g["id"], g["names"]) for g in groups] == [
        ("train", ["train/box_loss"]),
        ("val", ["val/box_loss"]),
        ("metrics-b", ["metrics/mAP50(B)", "metrics/precision(B)"]),
        ("metrics-m", ["metrics/mAP50(M)"]),
        ("metrics", ["metrics/accuracy_top1"]),
        ("lr", ["lr/pg0"]),
        ("other", ["fitness"]),
    ]


def test_deleted_points_leave_the_rollups_once_refreshed(store: Store) -> None:
    write(store, "train/loss", [(s, float(s)) for s in range(40)])
    with store.write() as conn:
        conn.exec_driver_sql("DELETE FROM metric_points WHERE step >= 16")
        q.refresh_rollups(conn, store.dialect, "m1", [("train/loss", s) for s in range(16, 40)])
    with store.read() as conn:
        assert [b.bucket for b in q.read_level(conn, "m1", "train/loss", 0)] == [0]
        summary = q.catalog(conn, "m1")["train/loss"]
    assert (summary.n, summary.last_step, summary.max_value) == (16, 15, 15.0)


# Which points of a batch replace stored ones: it drives both the rollups (a replaced point's
# buckets are recomputed) and the ``replaced`` count a client sees. An append-only batch takes a
# shortcut (one probe per series for its highest stored step), every other batch the per-point
# probe; both must give the same answer.

Points = dict[tuple[str, int], float | None]


def write_series(store: Store, points: Points) -> set[tuple[str, int]]:
    with store.write() as conn:
        return upsert_series(conn, store.dialect, "m1", points)


def grid(names: list[str], steps: range) -> Points:
    return {(n, s): float(s) + 0.5 * i for s in steps for i, n in enumerate(names)}


def test_append_only_batches_replace_nothing(store: Store) -> None:
    names = ["a", "b", "c"]
    assert write_series(store, grid(names, range(0, 100))) == set()
    assert write_series(store, grid(names, range(100, 200))) == set()
    # A new series next to old ones: still nothing stored before.
    assert write_series(store, grid([*names, "d"], range(200, 210))) == set()


def test_overlapping_gapped_and_mixed_batches_report_exactly_the_stored_points(store: Store) -> None:
    write_series(store, grid(["a", "b"], range(0, 10)))
    write_series(store, grid(["a", "b"], range(20, 30)))
    # Below the highest stored step but in a gap: nothing replaced.
    assert write_series(store, grid(["a", "b"], range(10, 20))) == set()
    # Overlaps the top: exactly the stored points.
    got = write_series(store, grid(["a", "b"], range(25, 35)))
    assert got == {(n, s) for n in ("a", "b") for s in range(25, 30)}
    # One series appends, the other re-sends one step.
    assert write_series(store, {("a", 40): 1.0, ("a", 41): 2.0, ("b", 3): 9.0, ("b", 50): 1.0}) == {("b", 3)}


def test_replaced_matches_a_brute_force_record_and_rollups_stay_exact(store: Store) -> None:
    rng = random.Random(11)
    truth: Points = {}
    names = [f"m{i}" for i in range(4)]
    top = 0
    for round_ in range(40):
        if round_ % 3:  # mostly appends, as a job sends them, sometimes re-sends and gaps
            steps = range(top, top + rng.randrange(1, 30))
        else:
            lo = rng.randrange(0, top + 1)
            steps = range(lo, lo + rng.randrange(1, 40))
        batch = {(n, s): rng.choice([None, rng.uniform(-1, 1)]) for s in steps for n in rng.sample(names, 2)}
        expected = {key for key in batch if key in truth}
        assert write_series(store, batch) == expected, round_
        truth.update(batch)
        top = max(top, steps.stop)
    with store.read() as conn:
        for name in names:
            series = sorted((s, v) for (n, s), v in truth.items() if n == name)
            summary = q.merge(0, [q.Bucket(s, 1, s, s, None if v is None else s, v, s, v) for s, v in series])
            top_level = list(q.read_level(conn, "m1", name, q.LEVELS - 1))
            assert top_level == ([summary] if summary else []), name
