"""The pure rules behind delivery: the server's token bucket, read-time liveness, what counts as
"already present", and the spool keeping the first model description."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from trainhub.client.spool import OwnerLock, Spool
from trainhub.client.transport import Result
from trainhub.client.worker import already_present
from trainhub.server.ratelimit import RateLimiter
from trainhub.server.services.models import Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_rate_and_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock)
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k") == 0.5  # one token every 0.5 s
    assert limiter.take("other") == 0.0  # buckets are per key
    clock.now = 0.5
    assert limiter.take("k") == 0.0
    assert limiter.take("k") > 0


def test_token_bucket_rate_zero_is_off() -> None:
    limiter = RateLimiter(0, 1)
    assert not limiter.enabled and all(limiter.take("k") == 0.0 for _ in range(100))


def _row(status: str, age: float | None, interval: float | None = None) -> dict[str, object]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    seen = None if age is None else now - timedelta(seconds=age)
    return {"status": status, "last_seen_at": seen, "last_heartbeat_at": seen, "heartbeat_interval": interval}


def test_liveness_is_training_then_stalled_after_two_intervals_then_crashed() -> None:
    rule, now = Liveness(crash_timeout=600), datetime(2026, 1, 1, tzinfo=UTC)
    assert rule.status(_row("training", 59), now) == "training"  # default interval 30 s
    assert rule.status(_row("training", 61), now) == "stalled"
    assert rule.status(_row("training", 601), now) == "crashed"
    assert rule.status(_row("training", 3, interval=1), now) == "stalled"  # the client's interval


def test_liveness_leaves_final_and_unseen_models_alone() -> None:
    rule, now = Liveness(crash_timeout=1), datetime(2026, 1, 1, tzinfo=UTC)
    for status in ("done", "failed", "cancelled", "new"):
        assert rule.status(_row(status, 10_000), now) == status
    assert rule.status(_row("training", None), now) == "training"


def test_already_present_comes_from_the_servers_reply() -> None:
    assert already_present("model", 1, Result(200, {})) == 1
    assert already_present("model", 1, Result(201, {})) == 0
    assert already_present("metrics", 5, Result(200, {"epochs": 5, "points": 9, "replaced": 2})) == 2
    assert already_present("event", 3, Result(202, {"accepted": 1, "duplicates": 2})) == 2
    assert already_present("checkpoint", 1, Result(201, {"already_present": True})) == 1
    assert already_present("status", 1, Result(200, {"status": "done"})) == 0


def test_a_recovering_process_keeps_the_first_model_description(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "m.db")
    first = spool.put("model", {"name": "run", "config": {"lr": 0.1}}, key="model", replace=False)
    again = spool.put("model", {"name": "m"}, key="model", replace=False)
    assert first == again and spool.items()[0].payload["config"] == {"lr": 0.1}
    spool.close()


def test_owner_lock_is_exclusive_until_released(tmp_path: Path) -> None:
    lock = OwnerLock.acquire(tmp_path / "m.db")
    assert lock is not None
    # flock is per open file description: a second open in this process is refused as well.
    assert OwnerLock.acquire(tmp_path / "m.db") is None
    lock.release()
    again = OwnerLock.acquire(tmp_path / "m.db")
    assert again is not None
    again.release()
