"""Both job engines keep the same promises (jobs/embedded.py on SQLite, jobs/procrastinated.py on PostgreSQL):
a job runs once its transaction commits, and never if it rolls back; a failing job is retried on its policy,
counting attempts in the database, so a restarted engine goes on where the last one stopped; a job that
exhausts its policy gives up once, with its error."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text

from recordkit.db.bus import LocalBus
from recordkit.db.engine import Database
from recordkit.jobs.dispatcher import Job
from recordkit.jobs.embedded import EmbeddedJobs
from recordkit.jobs.kinds import JobKind, RetryPolicy
from recordkit.jobs.procrastinated import ProcrastinateJobs
from recordkit.metrics import Metrics
from recordkit.node import new_node_id
from tests.support.metrics import metric

POLICY = RetryPolicy(attempts=3, first_delay_s=0.2, max_delay_s=1.0)


@dataclass
class Work:
    """The test's job handlers: `flaky` fails its first `failures` attempts of each recording, `broken` always."""

    failures: int = 2
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    gave_up: list[tuple[str, str]] = field(default_factory=list)
    done: dict[str, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))

    failed: dict[str, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))

    async def flaky(self, recording_id: str) -> None:
        self.calls[recording_id] += 1
        if self.calls[recording_id] <= self.failures:
            if self.calls[recording_id] == 2:
                self.failed[recording_id].set()
            raise OSError(f"attempt {self.calls[recording_id]} failed")
        self.done[recording_id].set()

    async def broken(self, recording_id: str) -> None:
        self.calls[recording_id] += 1
        raise OSError("the target refuses everything")

    async def give_up(self, recording_id: str, error: BaseException) -> None:
        self.gave_up.append((recording_id, str(error)))
        self.done[recording_id].set()


KINDS = [
    JobKind("flaky", "upload", POLICY, lambda work, rid: work.flaky(rid), lambda work, rid, e: work.give_up(rid, e)),
    JobKind("broken", "upload", POLICY, lambda work, rid: work.broken(rid), lambda work, rid, e: work.give_up(rid, e)),
]


@dataclass
class Engines:
    """Makes engines of one kind over one database, as successive processes would."""

    db: Database
    url: str
    kind: str
    metrics: Metrics = field(default_factory=Metrics)

    def new(self) -> Any:
        if self.kind == "sqlite":
            node = new_node_id()
            return EmbeddedJobs(self.db, LocalBus(), KINDS, node, {"upload": 4}, metrics=self.metrics, poll_s=0.2)
        return ProcrastinateJobs(self.url, KINDS, {"upload": 4}, metrics=self.metrics, graceful_s=5)

    async def attempts(self, recording_id: str) -> tuple[str, int]:
        table = "jobs" if self.kind == "sqlite" else "procrastinate_jobs"
        column = "recording_id" if self.kind == "sqlite" else "args->>'recording_id'"
        query = text(f"SELECT status, attempts FROM {table} WHERE {column} = :rid")
        async with self.db.read() as session:
            row = (await session.execute(query, {"rid": recording_id})).one()
        return str(row[0]), int(row[1])


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[Engines]:
    """Over the module's freshly migrated database, SQLite and then PostgreSQL (tests/conftest.py)."""
    db = Database(database_url)
    yield Engines(db, database_url, "sqlite" if database_url.startswith("sqlite") else "postgresql")
    await db.close()


async def submit(engines: Engines, engine: Any, job: Job, *, commit: bool = True) -> None:
    try:
        async with engines.db.write() as session:
            await engine.submit(session, job)
            if not commit:
                raise LookupError("roll back")
    except LookupError:
        pass


async def test_a_failing_job_is_retried_until_it_succeeds(engines: Engines) -> None:
    work, engine = Work(failures=2), engines.new()
    await engine.start(work)
    try:
        await submit(engines, engine, Job("flaky", "retried-1"))
        await asyncio.wait_for(work.done["retried-1"].wait(), 20)
    finally:
        await engine.stop(5)
    assert work.calls["retried-1"] == 3 and not work.gave_up
    assert await engines.attempts("retried-1") == ("succeeded", 3)


async def test_a_job_that_keeps_failing_gives_up_once_after_its_policy(engines: Engines) -> None:
    work, engine = Work(), engines.new()
    await engine.start(work)
    try:
        await submit(engines, engine, Job("broken", "doomed-1"))
        await asyncio.wait_for(work.done["doomed-1"].wait(), 20)
        await asyncio.sleep(1.0)  # a further attempt, were there one, would come within this
    finally:
        await engine.stop(5)
    assert work.calls["doomed-1"] == POLICY.attempts
    assert work.gave_up == [("doomed-1", "the target refuses everything")]
    assert await engines.attempts("doomed-1") == ("failed", 3)


async def test_a_restarted_engine_counts_the_attempts_made_before(engines: Engines) -> None:
    first, engine = Work(failures=10), engines.new()
    await engine.start(first)
    await submit(engines, engine, Job("flaky", "restarted-1"))
    await asyncio.wait_for(first.failed["restarted-1"].wait(), 20)
    await engine.stop(5)
    assert first.calls["restarted-1"] == 2
    assert await engines.attempts("restarted-1") == ("todo", 2)

    second, engine = Work(failures=0), engines.new()
    await engine.start(second)
    try:
        await asyncio.wait_for(second.done["restarted-1"].wait(), 20)
    finally:
        await engine.stop(5)
    assert second.calls["restarted-1"] == 1, "attempt 3 ran, once"
    assert await engines.attempts("restarted-1") == ("succeeded", 3)


async def test_a_job_runs_only_if_its_transaction_commits(engines: Engines) -> None:
    work, engine = Work(failures=0), engines.new()
    await engine.start(work)
    try:
        await submit(engines, engine, Job("flaky", "rolled-back"), commit=False)
        await submit(engines, engine, Job("flaky", "committed"))
        await asyncio.wait_for(work.done["committed"].wait(), 20)
        await asyncio.sleep(0.5)
        async with engines.db.read() as session:
            pending = await engine.pending(session, ["flaky"])
    finally:
        await engine.stop(5)
    assert "rolled-back" not in work.calls and work.calls["committed"] == 1
    assert pending == set()


async def test_each_attempt_is_counted_by_outcome_with_its_wait_in_the_queue(engines: Engines) -> None:
    work, engine = Work(failures=1), engines.new()
    await submit(engines, engine, Job("flaky", "counted-1"))
    await asyncio.sleep(1.0)  # queued while no engine runs: its first attempt waits this long
    await engine.start(work)
    try:
        await submit(engines, engine, Job("broken", "counted-2"))
        await asyncio.wait_for(work.done["counted-1"].wait(), 20)
        await asyncio.wait_for(work.done["counted-2"].wait(), 20)
    finally:
        await engine.stop(5)
    text = engines.metrics.exposition().decode()
    attempts = {
        (kind, outcome): metric(text, "recordkit_job_attempts_total", kind=kind, outcome=outcome)
        for kind, outcome in [("flaky", "retry"), ("flaky", "done"), ("broken", "retry"), ("broken", "gave_up")]
    }
    assert attempts == {("flaky", "retry"): 1, ("flaky", "done"): 1, ("broken", "retry"): 2, ("broken", "gave_up"): 1}
    assert metric(text, "recordkit_job_queue_wait_seconds_count", kind="flaky") == 2
    assert metric(text, "recordkit_job_queue_wait_seconds_count", kind="broken") == 3
    # The first attempt's second in the queue, and little besides: a retry waits from the end of its delay.
    assert 1.0 <= metric(text, "recordkit_job_queue_wait_seconds_sum", kind="flaky") < 3.0
