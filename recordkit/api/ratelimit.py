"""Optional request rate limit (recordings.md §3.2): 429 with `retry-after` in seconds, per verified token
or, for everyone else, per client address."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from recordkit.api.auth import participant_token
from recordkit.api.envelope import failure
from recordkit.api.errors import ApiError

# The RealtimeKit API, the join interface's signalling and the signed downloads; not the static files.
LIMITED_PREFIXES = ("/accounts/", "/client/v4/", "/meet/", "/files/")
# Enough for every caller a busy server sees in a minute, small enough that a flood of forged
# addresses or tokens costs a few MB at most.
MAX_CALLERS = 10_000


class RateLimiter:
    """A token bucket per caller: `per_minute` requests a minute, with bursts up to that many.

    At most `max_callers` buckets are kept; the least recently seen caller is forgotten first, which
    at worst hands that caller a full bucket again.
    """

    def __init__(
        self, per_minute: int, clock: Callable[[], float] = time.monotonic, max_callers: int = MAX_CALLERS
    ) -> None:
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60
        self.max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, caller: str) -> float | None:
        """Spend one request for `caller`; None when allowed, else seconds until one is available."""
        now = self._clock()
        tokens, last = self._buckets.pop(caller, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_s)
        allowed = tokens >= 1
        self._buckets[caller] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)
        return None if allowed else (1 - tokens) / self.refill_per_s


class RateLimit:
    """ASGI middleware applying a RateLimiter to the limited routes.

    A caller is its token only when `verifies` accepts it: keying by any string a client sends would
    give each forged token a fresh bucket.
    """

    def __init__(self, app: ASGIApp, limiter: RateLimiter, verifies: Callable[[str], bool]) -> None:
        self.app = app
        self.limiter = limiter
        self.verifies = verifies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(LIMITED_PREFIXES):
            wait_s = self.limiter.take(self._caller(scope))
            if wait_s is not None:
                limited = ApiError(429, "Too many requests", {"retry-after": str(max(1, math.ceil(wait_s)))})
                await failure(limited)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _caller(self, scope: Scope) -> str:
        token = participant_token(Request(scope))
        if token is not None and self.verifies(token):
            return "token:" + token
        client = scope.get("client")
        return "address:" + (client[0] if client else "unknown")
