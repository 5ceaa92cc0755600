"""Job kinds: what a job does, where it queues, how often it is tried, and what happens when it gives up.

Both engines (the embedded runner and procrastinate) run an attempt through `run_attempt`, so a kind behaves
the same on SQLite and PostgreSQL: the attempt number counts every earlier attempt, including one cut short
by a crash, and the attempt that exhausts the policy calls the kind's `gave_up` before it ends. Each attempt is
counted in the metrics by its outcome, on both engines alike.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from recordkit.metrics import Metrics

log = logging.getLogger(__name__)

Context = TypeVar("Context")


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` in all; between them an exponential backoff, capped and jittered so retries spread out."""

    attempts: int
    first_delay_s: float
    max_delay_s: float
    factor: float = 2.0
    jitter: float = 0.2  # each delay is drawn within ±20 % of its nominal value

    def delay_s(self, failed_attempt: int, scale: float = 1.0, draw: Callable[[], float] = random.random) -> float:
        """How long to wait after attempt number `failed_attempt` (1-based) failed."""
        nominal_s = min(self.max_delay_s, self.first_delay_s * self.factor ** (failed_attempt - 1))
        return scale * nominal_s * (1 + self.jitter * (2 * draw() - 1))

    def exhausted(self, attempt: int) -> bool:
        """Whether attempt number `attempt` is the last one allowed."""
        return attempt >= self.attempts


@dataclass(frozen=True)
class JobKind(Generic[Context]):
    """One declaration per kind. `run(context, recording_id)` must be idempotent: any attempt may be a retry
    of one that did part of the work. `gave_up(context, recording_id, error)` moves the recording to the
    state the spec gives when the work cannot be done."""

    name: str
    queue: str
    policy: RetryPolicy
    run: Callable[[Context, str], Awaitable[None]]
    gave_up: Callable[[Context, str, BaseException], Awaitable[None]]


class Outcome(enum.Enum):
    DONE = "done"
    RETRY = "retry"
    GAVE_UP = "gave_up"


@dataclass(frozen=True)
class Attempt:
    """How one attempt ended, and its error as one line (`describe`) when it failed."""

    outcome: Outcome
    error: str | None = None


async def run_attempt(
    kind: JobKind[Context], context: Context, recording_id: str, attempt: int, metrics: Metrics
) -> Attempt:
    """Run attempt number `attempt` (1-based) of a job; what the engine should do with the job next."""
    try:
        result = await _attempt(kind, context, recording_id, attempt)
    except asyncio.CancelledError:
        metrics.job_attempted(kind.name, "interrupted")
        raise
    metrics.job_attempted(kind.name, result.outcome.value)
    return result


async def _attempt(kind: JobKind[Context], context: Context, recording_id: str, attempt: int) -> Attempt:
    try:
        await kind.run(context, recording_id)
    except Exception as error:
        described = describe(error)
        if not kind.policy.exhausted(attempt):
            log.warning(
                "%s job for recording %s failed (attempt %d of %d): %s",
                kind.name, recording_id, attempt, kind.policy.attempts, described,
            )  # fmt: skip
            return Attempt(Outcome.RETRY, described)
        log.error(
            "%s job for recording %s failed for good after %d attempts: %s",
            kind.name, recording_id, attempt, described, exc_info=error,
        )  # fmt: skip
        try:
            await kind.gave_up(context, recording_id, error)
        except Exception:
            log.exception("%s job for recording %s: giving up failed too", kind.name, recording_id)
        return Attempt(Outcome.GAVE_UP, described)
    return Attempt(Outcome.DONE)


def describe(error: BaseException) -> str:
    """An error as one short line for logs and stored reasons: its class and message, nothing else."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}"[:300] if message else type(error).__name__
