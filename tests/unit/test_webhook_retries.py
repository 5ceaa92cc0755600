"""The delivery schedule of meetings.md §7.2: 2xx delivers, 5xx and no answer retry after 1, 2, 4, 8, 16 s
(±20 %), anything else fails at once, and the fifth retry is the last."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from recordkit.webhooks.delivery import Outcome, next_state

NOW = datetime(2026, 12, 7, 9, 0, 0)


@pytest.mark.parametrize("outcome", [Outcome(500, "HTTP 500"), Outcome(503, "HTTP 503"), Outcome(None, "ConnectError")])
def test_server_errors_and_no_answer_are_retried_on_the_schedule(outcome: Outcome) -> None:
    rng = random.Random(7)
    delays = []
    for attempt in range(1, 6):
        status, retry_at = next_state(attempt, outcome, NOW, rng)
        assert status == "PENDING" and retry_at is not None
        delays.append((retry_at - NOW).total_seconds())
    for delay, base in zip(delays, (1, 2, 4, 8, 16), strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    assert next_state(6, outcome, NOW, rng) == ("FAILED", None), "five retries, then it fails"


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_any_2xx_delivers(code: int) -> None:
    assert next_state(1, Outcome(code, None), NOW, random.Random()) == ("DELIVERED", None)


@pytest.mark.parametrize("code", [301, 302, 307, 400, 401, 404, 410, 499])
def test_redirects_and_client_errors_fail_without_a_retry(code: int) -> None:
    assert next_state(1, Outcome(code, f"HTTP {code}"), NOW, random.Random()) == ("FAILED", None)


def test_jitter_spreads_retries() -> None:
    rng = random.Random(1)
    spread = {next_state(1, Outcome(500, None), NOW, rng)[1] for _ in range(20)}
    assert len(spread) > 10 and all(
        NOW + timedelta(seconds=0.8) <= at <= NOW + timedelta(seconds=1.2) for at in spread if at
    )
