"""The pure retry policy: backoff bounds, cap, deadline, Retry-After parsing and floor."""

from __future__ import annotations

import email.utils

import pytest

from trainhub.client.retry import RetryPolicy, is_retryable, parse_retry_after


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_retryable_statuses(status: int) -> None:
    assert is_retryable(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 200, 302])
def test_other_statuses_are_not_retryable(status: int) -> None:
    assert not is_retryable(status)


@pytest.mark.parametrize("r", [0.0, 0.5, 0.999999])
def test_full_jitter_is_between_zero_and_the_exponential(r: float) -> None:
    policy = RetryPolicy(base=1.0, cap=100.0, jitter="full", random=lambda: r)
    for attempt in range(1, 6):
        ceiling = 2.0 ** (attempt - 1)
        assert 0.0 <= policy.backoff(attempt) <= ceiling
        assert policy.backoff(attempt) == pytest.approx(r * ceiling)


@pytest.mark.parametrize("r", [0.0, 0.999999])
def test_equal_jitter_keeps_half_of_the_exponential(r: float) -> None:
    policy = RetryPolicy(base=1.0, cap=100.0, jitter="equal", random=lambda: r)
    for attempt in range(1, 6):
        ceiling = 2.0 ** (attempt - 1)
        assert ceiling / 2 <= policy.backoff(attempt) <= ceiling


def test_backoff_is_capped_even_for_huge_attempt_counts() -> None:
    policy = RetryPolicy(base=0.5, cap=30.0, jitter="none")
    assert policy.backoff(1) == 0.5
    assert policy.backoff(7) == 30.0
    assert policy.backoff(10_000) == 30.0


def test_next_delay_gives_up_after_the_deadline() -> None:
    policy = RetryPolicy(deadline=10.0, jitter="none")
    assert policy.next_delay(1, elapsed=9.0) == 0.5
    assert policy.next_delay(1, elapsed=10.0) is None


def test_next_delay_never_sleeps_past_the_deadline() -> None:
    policy = RetryPolicy(base=8.0, cap=8.0, deadline=10.0, jitter="none")
    assert policy.next_delay(1, elapsed=7.0) == 3.0


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(jitter="none")
    assert policy.next_delay(1, elapsed=0.0, retry_after=7.0) == 7.0
    assert policy.next_delay(7, elapsed=0.0, retry_after=1.0) == 30.0  # backoff already longer


def test_retry_after_beyond_the_deadline_gives_up() -> None:
    policy = RetryPolicy(deadline=10.0)
    assert policy.next_delay(1, elapsed=5.0, retry_after=6.0) is None


@pytest.mark.parametrize(
    ("value", "expected"), [("120", 120.0), (" 3 ", 3.0), ("1.5", 1.5), ("0", 0.0), ("-4", 0.0)]
)
def test_parse_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=0.0) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    value = email.utils.formatdate(now + 42, usegmt=True)
    assert parse_retry_after(value, now=now) == pytest.approx(42.0)


def test_parse_retry_after_date_in_the_past_is_zero() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now - 100, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf", "Mon, 99 Foo 2020"])
def test_parse_retry_after_rejects_garbage(value: str | None) -> None:
    assert parse_retry_after(value, now=0.0) is None
