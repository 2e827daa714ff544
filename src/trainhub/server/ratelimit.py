"""Per-key request rate limits: the one place where the server answers 429 with ``Retry-After``.

Every ``/api/v1`` request (except ``/health``) takes a token from its caller's bucket: a token bucket
refilled at ``rate_limit_rps`` tokens per second and holding at most ``rate_limit_burst``
(:class:`~trainhub.server.settings.ServerSettings`). A request that finds the bucket empty gets
``429 rate_limited`` with ``Retry-After: <whole seconds until a token is back>`` and does no work.
The trainhub client waits at least that long before it sends again (the header is a floor in its
retry policy), so a limited client slows down instead of losing anything.

The caller is the sha256 of the credential it presents (API key, else web session cookie), else its
address: the check runs before authentication, so a flood of bad keys is limited too and costs no
database lookups.

Scope and scale-out: buckets live in the memory of one server process. With several worker
processes behind one port, each enforces its own bucket, so a key may get up to N x the configured
rate in total (set the limits per worker accordingly). A shared limiter (e.g. in the database or
Redis) is left to the scale-out work. The Ultralytics compatibility routes (``/v1``, ``/api`` of the
Platform) are not limited: the Ultralytics client gives up on 429.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from trainhub.protocol import API_PREFIX, HEADER_RETRY_AFTER, ErrorCode
from trainhub.server.errors import error_response

__all__ = ["MAX_BUCKETS", "RateLimitMiddleware", "RateLimiter"]

#: Most callers tracked at once; past it, idle (full) buckets are forgotten first.
MAX_BUCKETS = 10_000
_EXEMPT = frozenset({f"{API_PREFIX}/health"})


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per caller key (thread-safe).

    Args:
        rate: tokens added per second; ``0`` disables the limit.
        burst: bucket size (the most requests a caller can make at once).
        clock: monotonic clock (injected in tests).
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether requests are limited at all."""
        return self.rate > 0

    def take(self, key: str) -> float:
        """Take one token for ``key``; returns 0 when allowed, else the seconds until one is back."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._evict(now)
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _evict(self, now: float) -> None:
        # A bucket that has refilled completely holds no state worth keeping.
        full_after = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full_after}
        if len(self._buckets) >= MAX_BUCKETS:  # all busy: forget them (fail open, memory stays bounded)
            self._buckets.clear()


def caller_key(scope: Scope) -> str:
    """Who is asking, for rate limiting: a hash of the presented credential, else the address."""
    headers = Headers(scope=scope)
    credential = headers.get("authorization") or headers.get("x-api-key")
    if not credential:
        cookies = headers.get("cookie")
        if cookies:
            from trainhub.server.auth import SESSION_COOKIE

            credential = cookie_parser(cookies).get(SESSION_COOKIE)
    if credential:
        return "k:" + hashlib.sha256(credential.encode()).hexdigest()
    client = scope.get("client")
    return f"a:{client[0] if client else '-'}"


class RateLimitMiddleware:
    """Answers 429 + ``Retry-After`` to callers over their rate (see the module docstring)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if not self.limiter.enabled or not path.startswith(API_PREFIX + "/") or path in _EXEMPT:
            await self.app(scope, receive, send)
            return
        wait = self.limiter.take(caller_key(scope))
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            response = error_response(
                429,
                ErrorCode.RATE_LIMITED,
                f"too many requests for this key; retry in {seconds} s",
                {HEADER_RETRY_AFTER: str(seconds)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
