"""Retry policies: exponential, capped, jittered within their bounds (jobs/kinds.py)."""

from __future__ import annotations

import pytest

from recordkit.jobs.kinds import RetryPolicy, describe

UPLOADS = RetryPolicy(attempts=6, first_delay_s=2.0, max_delay_s=60.0)


@pytest.mark.parametrize(
    ("failed_attempt", "draw", "expected_s"),
    [
        (1, 0.5, 2.0),  # the middle of the jitter band is the nominal delay
        (2, 0.5, 4.0),
        (5, 0.5, 32.0),
        (6, 0.5, 60.0),  # 64 capped at 60
        (1, 0.0, 1.6),  # −20 %
        (1, 1.0, 2.4),  # +20 %
        (9, 1.0, 72.0),  # the cap is nominal: jitter still spreads capped retries
    ],
)
def test_delays_grow_exponentially_up_to_the_cap(failed_attempt: int, draw: float, expected_s: float) -> None:
    assert UPLOADS.delay_s(failed_attempt, draw=lambda: draw) == pytest.approx(expected_s)


def test_a_scale_shortens_every_delay_alike() -> None:
    assert UPLOADS.delay_s(3, scale=0.01, draw=lambda: 0.5) == pytest.approx(0.08)


def test_uploads_are_retried_at_least_five_times_over_at_least_30_s() -> None:
    """recordings.md §10.4, even when every delay draws the low end of its jitter."""
    retries = UPLOADS.attempts - 1
    assert retries >= 5
    assert sum(UPLOADS.delay_s(attempt, draw=lambda: 0.0) for attempt in range(1, retries + 1)) >= 30


@pytest.mark.parametrize(("attempt", "last"), [(1, False), (5, False), (6, True), (7, True)])
def test_the_policy_is_exhausted_at_its_last_attempt(attempt: int, last: bool) -> None:
    assert UPLOADS.exhausted(attempt) is last


def test_errors_are_described_by_class_and_first_line() -> None:
    assert describe(OSError(28, "No space left on device")) == "OSError: [Errno 28] No space left on device"
    assert describe(RuntimeError("first\nsecond")) == "RuntimeError: first"
    assert describe(TimeoutError()) == "TimeoutError"
