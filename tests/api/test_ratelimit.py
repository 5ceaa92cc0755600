"""The optional per-token rate limit (recordings.md §3.2)."""

from __future__ import annotations

from recordkit.api.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bursts_up_to_the_limit_then_asks_to_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock)
    assert all(limiter.take("a") is None for _ in range(60))
    wait = limiter.take("a")
    assert wait is not None and 0.9 < wait <= 1.0
    assert limiter.take("b") is None, "each caller has its own bucket"
    clock.now += 1.0
    assert limiter.take("a") is None
    assert limiter.take("a") is not None
