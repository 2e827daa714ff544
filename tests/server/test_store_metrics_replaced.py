"""Which points of a batch replace stored ones (SQLite store, no server).

The answer drives both the chart rollups (a replaced point's buckets are recomputed) and the
``replaced`` count a client sees; an append-only batch takes a shortcut (one probe per series for
its highest stored step), everything else the per-point probe. Both must give the same answer.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from trainhub.server.auth import Principal
from trainhub.server.schemas import ModelCreateIn
from trainhub.server.services import models as model_svc
from trainhub.server.store import charts as q
from trainhub.server.store.engine import Store, sqlite_engine
from trainhub.server.store.metrics import upsert_series

Points = dict[tuple[str, int], float | None]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(sqlite_engine(f"sqlite:///{tmp_path / 'hub.db'}"))
    s.migrate()
    admin = Principal(key_id="k1", name="test", is_admin=True, user_admin=True)
    model_svc.create_model(s, admin, "m1", ModelCreateIn(name="run"), "")
    return s


def write(store: Store, points: Points) -> set[tuple[str, int]]:
    with store.write() as conn:
        return upsert_series(conn, store.dialect, "m1", points)


def grid(names: list[str], steps: range) -> Points:
    return {(n, s): float(s) + 0.5 * i for s in steps for i, n in enumerate(names)}


def test_append_only_batches_replace_nothing(store: Store) -> None:
    names = ["a", "b", "c"]
    assert write(store, grid(names, range(0, 100))) == set()
    assert write(store, grid(names, range(100, 200))) == set()
    # A new series next to old ones: still nothing stored before.
    assert write(store, grid([*names, "d"], range(200, 210))) == set()


def test_overlapping_gapped_and_mixed_batches_report_exactly_the_stored_points(store: Store) -> None:
    write(store, grid(["a", "b"], range(0, 10)))
    write(store, grid(["a", "b"], range(20, 30)))
    # Below the highest stored step but in a gap: nothing replaced.
    assert write(store, grid(["a", "b"], range(10, 20))) == set()
    # Overlaps the top: exactly the stored points.
    got = write(store, grid(["a", "b"], range(25, 35)))
    assert got == {(n, s) for n in ("a", "b") for s in range(25, 30)}
    # One series appends, the other re-sends one step.
    assert write(store, {("a", 40): 1.0, ("a", 41): 2.0, ("b", 3): 9.0, ("b", 50): 1.0}) == {("b", 3)}


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
        assert write(store, batch) == expected, round_
        truth.update(batch)
        top = max(top, steps.stop)
    with store.read() as conn:
        for name in names:
            series = sorted((s, v) for (n, s), v in truth.items() if n == name)
            summary = q.merge(0, [q.Bucket(s, 1, s, s, None if v is None else s, v, s, v) for s, v in series])
            top_level = list(q.read_level(conn, "m1", name, q.LEVELS - 1))
            assert top_level == ([summary] if summary else []), name
