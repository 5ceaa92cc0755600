"""Optional request rate limit per token (recordings.md §3.2): 429 with `retry-after` in seconds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from recordkit.api.envelope import failure
from recordkit.api.errors import ApiError

LIMITED_PREFIXES = ("/accounts/", "/client/v4/")


class RateLimiter:
    """A token bucket per caller: `per_minute` requests a minute, with bursts up to that many."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, caller: str) -> float | None:
        """Spend one request for `caller`; None when allowed, else seconds until one is available."""
        now = self._clock()
        tokens, last = self._buckets.get(caller, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_s)
        if tokens >= 1:
            self._buckets[caller] = (tokens - 1, now)
            return None
        self._buckets[caller] = (tokens, now)
        return (1 - tokens) / self.refill_per_s


class RateLimit:
    """ASGI middleware applying a RateLimiter to the RealtimeKit routes, keyed by bearer token or address."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(LIMITED_PREFIXES):
            wait_s = self.limiter.take(_caller(scope))
            if wait_s is not None:
                limited = ApiError(429, "Too many requests", {"retry-after": str(max(1, math.ceil(wait_s)))})
                await failure(limited)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _caller(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return "token:" + value.decode("latin-1")
    client = scope.get("client")
    return "address:" + (client[0] if client else "unknown")
