"""Pure retry policy: which failures to retry and how long to wait before the next attempt.

No I/O and no sleeping here: the worker asks :meth:`RetryPolicy.next_delay` for a number and waits on
an Event itself (so shutdown interrupts the wait). The random source is injected for tests.

Defaults: first wait up to 0.5 s, doubling per attempt, capped at 30 s, with *full jitter*
(``uniform(0, backoff)``, the AWS architecture blog's recommendation to spread a herd of clients);
*equal jitter* (``backoff/2 + uniform(0, backoff/2)``) keeps a minimum wait. A ``Retry-After`` from the
server is a floor: we never come back sooner than asked. The overall deadline (300 s) bounds one
series of attempts; what happens after it is the caller's choice (the worker keeps the items in the
spool and slows down to one attempt per ``cap``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["RetryPolicy", "is_retryable", "parse_retry_after"]

Jitter = Literal["full", "equal", "none"]


def is_retryable(status: int) -> bool:
    """Whether an HTTP status is worth retrying: 408, 429 and every 5xx; other 4xx are permanent."""
    return status in (408, 429) or 500 <= status <= 599


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value.

    Args:
        value: delay-seconds (``"120"``, decimals tolerated) or an HTTP date
            (``"Wed, 21 Oct 2015 07:28:00 GMT"``); ``None`` or empty when absent.
        now: the current Unix time (``time.time()``), used for HTTP dates.

    Returns:
        The non-negative delay in seconds, or ``None`` when absent or unparseable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # lazy: only HTTP-date values need it

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
            return None
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter and an overall deadline.

    Attributes:
        base: backoff of the first retry, seconds.
        multiplier: growth factor per attempt.
        cap: largest backoff, seconds (a ``Retry-After`` may still ask for more).
        deadline: seconds after the first attempt past which :meth:`next_delay` gives up.
        jitter: ``"full"``, ``"equal"`` or ``"none"``.
        random: source of uniform numbers in [0, 1); inject a fixed one in tests.
    """

    base: float = 0.5
    multiplier: float = 2.0
    cap: float = 30.0
    deadline: float = 300.0
    jitter: Jitter = "full"
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        """The jittered backoff before retry number ``attempt`` (1 for the first retry)."""
        exponent = min(max(attempt - 1, 0), 64)  # bounded so huge attempt counts cannot overflow
        ceiling = min(self.cap, self.base * self.multiplier**exponent)
        if self.jitter == "full":
            return self.random() * ceiling
        if self.jitter == "equal":
            return ceiling / 2 + self.random() * ceiling / 2
        return ceiling

    def next_delay(self, attempt: int, elapsed: float, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number ``attempt``, or ``None`` to give up.

        Args:
            attempt: 1 for the first retry, 2 for the second, ...
            elapsed: seconds since the first attempt of this series.
            retry_after: the server's ``Retry-After`` in seconds, if any; the result is never below it.

        Returns:
            The delay, clipped so the retry happens before the deadline; ``None`` when the deadline has
            passed or when honouring ``Retry-After`` would cross it.
        """
        remaining = self.deadline - elapsed
        if remaining <= 0:
            return None
        delay = self.backoff(attempt)
        if retry_after is not None:
            if retry_after > remaining:
                return None
            delay = max(delay, retry_after)
        return min(delay, remaining)
