"""Per-category rate limits with a fake clock."""

from __future__ import annotations

from trainhub.client.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_category_that_never_fired_is_ready() -> None:
    assert RateLimiter({"metrics": 3.0}, Clock()).ready("metrics")


def test_ready_again_only_after_the_interval() -> None:
    clock = Clock()
    limiter = RateLimiter({"metrics": 3.0}, clock)
    limiter.reset("metrics")
    clock.now += 2.9
    assert not limiter.ready("metrics")
    clock.now += 0.1
    assert limiter.ready("metrics")


def test_categories_are_independent() -> None:
    clock = Clock()
    limiter = RateLimiter({"metrics": 3.0, "ckpt": 900.0}, clock)
    limiter.reset("ckpt")
    clock.now += 5
    assert limiter.ready("metrics")
    assert not limiter.ready("ckpt")


def test_acquire_resets_when_ready() -> None:
    clock = Clock()
    limiter = RateLimiter({}, clock, default=60.0)
    assert limiter.acquire("event:train")
    assert not limiter.acquire("event:train")
    clock.now += 60
    assert limiter.acquire("event:train")
    assert limiter.timers["event:train"] == clock.now
