"""Per-category rate limits with an injectable clock.

The same shape as the seed's ``session.rate_limits`` / ``session.timers`` pair: ``limits`` maps a
category (``"metrics"``, ``"ckpt"``, ``"heartbeat"``, ``"event:train"``...) to a minimum interval in
seconds, ``timers`` maps it to the clock reading of the last time it fired. A category that never
fired is ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

__all__ = ["RateLimiter"]


class RateLimiter:
    """Minimum intervals between actions, one timer per category.

    Args:
        limits: seconds between two actions of each category; unknown categories use ``default``.
        clock: monotonic clock in seconds (``time.monotonic``); inject a fake one in tests.
        default: interval of a category missing from ``limits``.
    """

    def __init__(
        self,
        limits: Mapping[str, float],
        clock: Callable[[], float] = time.monotonic,
        *,
        default: float = 0.0,
    ) -> None:
        self.limits: dict[str, float] = dict(limits)
        self.timers: dict[str, float] = {}
        self.clock = clock
        self.default = default

    def ready(self, category: str) -> bool:
        """Whether ``category``'s interval has passed since its last :meth:`reset`."""
        last = self.timers.get(category)
        if last is None:
            return True
        return self.clock() - last >= self.limits.get(category, self.default)

    def reset(self, category: str) -> None:
        """Start ``category``'s interval now."""
        self.timers[category] = self.clock()

    def acquire(self, category: str) -> bool:
        """If ``category`` is ready, reset it and return True; else return False."""
        if not self.ready(category):
            return False
        self.reset(category)
        return True
