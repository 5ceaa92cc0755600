"""The embedded job runner (SQLite): jobs in the `jobs` table, run as tasks on this process's event loop.

The same semantics as procrastinate's: a job is a row written in the transaction that causes it; a worker
claims it (`todo` → `doing`), runs one attempt, and records the outcome (`succeeded`, `failed`, or `todo`
again with a later `run_after` and one more attempt counted). A SQLite database belongs to one process,
so at start every job still `doing` was cut short by a crash: it goes back to `todo` with that attempt
counted, as procrastinate does for the jobs of a worker whose heartbeat stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.clock import utcnow
from recordkit.db.bus import JOBS, Bus
from recordkit.db.engine import Database
from recordkit.db.models import QueuedJob
from recordkit.jobs.dispatcher import Job
from recordkit.jobs.kinds import Context, JobKind, Outcome, run_attempt
from recordkit.metrics import Metrics

log = logging.getLogger(__name__)

TODO, DOING, SUCCEEDED, FAILED = "todo", "doing", "succeeded", "failed"
INTERRUPTED = "interrupted: its process stopped before the attempt ended"


class EmbeddedJobs(Generic[Context]):
    """Submits jobs into the `jobs` table and runs them, at most `concurrency[queue]` at once per queue."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        kinds: Sequence[JobKind[Context]],
        node_id: str,
        concurrency: Mapping[str, int],
        *,
        metrics: Metrics,
        retry_scale: float = 1.0,
        poll_s: float = 1.0,
    ) -> None:
        self.db = db
        self.bus = bus
        self.kinds = {kind.name: kind for kind in kinds}
        self.node_id = node_id
        self.concurrency = dict(concurrency)
        self.metrics = metrics
        self.retry_scale = retry_scale
        self.poll_s = poll_s
        self._taking = {queue for queue, limit in self.concurrency.items() if limit > 0}
        self._running: dict[asyncio.Task[None], str] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        bus.subscribe(JOBS, lambda _queue: self._wake.set())

    # --- the dispatcher side -------------------------------------------------------------------------------

    async def submit(self, session: AsyncSession, job: Job) -> None:
        now = utcnow()
        queue = job.queue or self.kinds[job.kind].queue
        session.add(
            QueuedJob(
                kind=job.kind,
                queue=queue,
                recording_id=job.recording_id,
                status=TODO,
                attempts=0,
                run_after=now,
                created_at=now,
                updated_at=now,
            )
        )
        await self.bus.publish(session, JOBS, queue)

    async def pending(
        self, session: AsyncSession, kinds: Iterable[str], *, running: bool = True
    ) -> set[tuple[str, str]]:
        rows = await session.execute(
            select(QueuedJob.kind, QueuedJob.recording_id).where(
                QueuedJob.status.in_((TODO, DOING) if running else (TODO,)), QueuedJob.kind.in_(list(kinds))
            )
        )
        return {(kind, recording_id) for kind, recording_id in rows}

    async def prune(self, older_than: timedelta) -> None:
        """Forget jobs that ended more than `older_than` ago."""
        async with self.db.write() as session:
            await session.execute(
                delete(QueuedJob).where(
                    QueuedJob.status.in_((SUCCEEDED, FAILED)), QueuedJob.updated_at < utcnow() - older_than
                )
            )

    # --- the worker side -----------------------------------------------------------------------------------

    async def start(self, context: Context) -> None:
        """Take back what a crash left running, then run jobs until `stop()`."""
        async with self.db.write() as session:
            await session.execute(
                update(QueuedJob)
                .where(QueuedJob.status == DOING, QueuedJob.taken_by != self.node_id)
                .values(
                    status=TODO,
                    attempts=QueuedJob.attempts + 1,
                    last_error=INTERRUPTED,
                    taken_by=None,
                    updated_at=utcnow(),
                )
            )
        self._loop_task = asyncio.create_task(self._take_forever(context), name="embedded jobs")

    async def drain_queues(self, queues: Iterable[str], timeout_s: float) -> bool:
        """Claim no more jobs from these queues and wait until their running jobs ended; whether in time."""
        watched = set(queues)
        self._taking.difference_update(watched)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while running := [task for task, queue in self._running.items() if queue in watched]:
            left_s = deadline - asyncio.get_running_loop().time()
            if left_s <= 0:
                return False
            await asyncio.wait(running, timeout=left_s)
        return True

    async def stop(self, timeout_s: float) -> None:
        """Claim nothing more, let running jobs end within `timeout_s`, then cut the rest short (they run
        again at the next start, the cut attempt counted)."""
        await self.drain_queues(list(self.concurrency), timeout_s)
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _take_forever(self, context: Context) -> None:
        while True:
            self._wake.clear()
            try:
                wait_s = await self._take_due(context)
            except Exception:
                log.exception("the job runner could not read its queue; trying again")
                wait_s = self.poll_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()

    async def _take_due(self, context: Context) -> float:
        """Claim the due jobs of every queue with a free slot (one read, and one write per queue that has some);
        how long until the next job there falls due, at most `poll_s`."""
        busy = Counter(self._running.values())
        free = {queue: self.concurrency[queue] - busy[queue] for queue in self._taking}
        free = {queue: slots for queue, slots in free.items() if slots > 0}
        if not free:
            return self.poll_s
        now = utcnow()
        async with self.db.read() as session:
            rows = await session.execute(
                select(QueuedJob.queue, func.min(QueuedJob.run_after))
                .where(QueuedJob.status == TODO, QueuedJob.queue.in_(sorted(free)))
                .group_by(QueuedJob.queue)
            )
            next_due: dict[str, datetime] = {queue: due for queue, due in rows}
        for queue, due in next_due.items():
            if due <= now:
                for job in await self._claim(queue, free[queue], now):
                    task = asyncio.create_task(self._run(context, job), name=f"job {job.kind} {job.id}")
                    self._running[task] = queue
                    task.add_done_callback(self._finished)
        later_s = [(due - now).total_seconds() for due in next_due.values() if due > now]
        return min([self.poll_s, *later_s])

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._wake.set()  # a slot is free

    async def _claim(self, queue: str, slots: int, now: datetime) -> list[QueuedJob]:
        """Take up to `slots` due jobs of `queue`, oldest first."""
        async with self.db.write() as session:
            due = (
                select(QueuedJob.id)
                .where(QueuedJob.status == TODO, QueuedJob.queue == queue, QueuedJob.run_after <= now)
                .order_by(QueuedJob.id)
                .limit(slots)
            )
            claimed = await session.execute(
                update(QueuedJob)
                .where(QueuedJob.id.in_(due), QueuedJob.status == TODO)
                .values(status=DOING, taken_by=self.node_id, updated_at=now)
                .returning(QueuedJob)
            )
            return sorted(claimed.scalars(), key=lambda job: job.id)

    async def _run(self, context: Context, job: QueuedJob) -> None:
        kind = self.kinds.get(job.kind)
        attempt = job.attempts + 1
        if kind is None:
            log.error("job %d has an unknown kind %r; it fails", job.id, job.kind)
            await self._record(job.id, status=FAILED, attempts=attempt, last_error=f"unknown kind {job.kind}")
            return
        # Claimed at `updated_at`; due since `run_after` (its insert, or the end of its retry delay).
        self.metrics.job_waited(kind.name, (job.updated_at - job.run_after).total_seconds())
        try:
            result = await run_attempt(kind, context, job.recording_id, attempt, self.metrics)
        except asyncio.CancelledError:
            await asyncio.shield(self._record(job.id, status=TODO, attempts=attempt, last_error=INTERRUPTED))
            raise
        if result.outcome is Outcome.RETRY:
            delay = timedelta(seconds=kind.policy.delay_s(attempt, self.retry_scale))
            await self._record(job.id, status=TODO, attempts=attempt, last_error=result.error, delay=delay)
        else:
            status = SUCCEEDED if result.outcome is Outcome.DONE else FAILED
            await self._record(job.id, status=status, attempts=attempt, last_error=result.error)

    async def _record(self, job_id: int, *, delay: timedelta = timedelta(0), **values: Any) -> None:
        now = utcnow()
        async with self.db.write() as session:
            await session.execute(
                update(QueuedJob)
                .where(QueuedJob.id == job_id)
                .values(**values, taken_by=None, run_after=now + delay, updated_at=now)
            )
