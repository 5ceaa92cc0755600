"""Jobs on procrastinate (PostgreSQL): any number of processes take them from one database.

A job is deferred through procrastinate's SQL function `procrastinate_defer_jobs_v1` (its stable interface
in the pinned 3.10) on the caller's own connection, so it commits with the change that causes it; the
insert trigger wakes the workers. Each kind is a procrastinate task whose attempt goes through
`run_attempt`; a retry is a `RetryLater` that our retry strategy turns into procrastinate's retry with the
kind's jittered delay, so `job.attempts` (kept in the row) counts every attempt across restarts. The jobs
of a worker whose heartbeat stopped are handed back by `retry_stalled`, which the reconciler calls. How long
an attempt waited in the queue is read from procrastinate's own event rows, on the database's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Generic

import orjson
from procrastinate import App, BaseRetryStrategy, JobContext, PsycopgConnector, RetryDecision
from procrastinate.jobs import Job as ProcrastinateJob
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.jobs.dispatcher import Job
from recordkit.jobs.kinds import Context, JobKind, Outcome, run_attempt
from recordkit.metrics import Metrics

log = logging.getLogger(__name__)

# A worker updates its heartbeat this often; one silent for STALLED_S is taken for dead.
HEARTBEAT_S = 2.0
STALLED_S = 10.0
POLL_S = 0.5

_DEFER = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(CAST(:queue AS varchar), CAST(:task AS varchar), 0, NULL::text,"
    " NULL::text, CAST(:args AS jsonb), NULL::timestamptz)]::procrastinate_job_to_defer_v1[])"
)
# Waiting jobs, and running ones whose worker still beats: a silent worker's job is as good as lost (a negative
# `stalled_s` leaves the running ones out).
_PENDING = text(
    "SELECT job.task_name, job.args->>'recording_id' FROM procrastinate_jobs job"
    " LEFT JOIN procrastinate_workers worker ON worker.id = job.worker_id"
    " WHERE job.task_name = ANY(CAST(:kinds AS varchar[])) AND (job.status = 'todo' OR (job.status = 'doing'"
    " AND worker.last_heartbeat > NOW() - make_interval(secs => :stalled_s)))"
)

# From when the job fell due — its latest deferral (the insert, a retry, a hand-back) or the instant its retry
# was scheduled for, whichever is later — to when this attempt started.
_QUEUE_WAIT = (
    "SELECT EXTRACT(EPOCH FROM started.at - GREATEST(queued.at, job.scheduled_at)) AS waited_s"
    " FROM procrastinate_jobs job"
    " CROSS JOIN LATERAL (SELECT max(at) AS at FROM procrastinate_events"
    " WHERE job_id = job.id AND type = 'started') started"
    " CROSS JOIN LATERAL (SELECT max(at) AS at FROM procrastinate_events WHERE job_id = job.id"
    " AND type IN ('deferred', 'deferred_for_retry', 'retried') AND at <= started.at) queued"
    " WHERE job.id = %(job_id)s"
)


class RetryLater(Exception):
    """The attempt failed and the kind's policy allows another one after `delay_s`."""

    def __init__(self, error: str | None, delay_s: float) -> None:
        super().__init__(error or "failed")
        self.delay_s = delay_s


class GaveUp(Exception):
    """The last attempt failed; the kind's `gave_up` has run. procrastinate records the job as failed."""


class _Retries(BaseRetryStrategy):
    def get_retry_decision(self, *, exception: BaseException, job: ProcrastinateJob) -> RetryDecision | None:
        if isinstance(exception, RetryLater):
            return RetryDecision(retry_in={"seconds": exception.delay_s})
        if isinstance(exception, asyncio.CancelledError):
            return RetryDecision(retry_in={"seconds": 0})  # cut short by our shutdown: again, the attempt counted
        return None


class ProcrastinateJobs(Generic[Context]):
    """Defers jobs into procrastinate and runs one worker per queue with `concurrency[queue]` > 0."""

    def __init__(
        self,
        database_url: str,
        kinds: Sequence[JobKind[Context]],
        concurrency: Mapping[str, int],
        *,
        metrics: Metrics,
        retry_scale: float = 1.0,
        graceful_s: float = 30.0,
    ) -> None:
        conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.app = App(connector=PsycopgConnector(conninfo=conninfo, min_size=1, max_size=8))
        self.kinds = {kind.name: kind for kind in kinds}
        self.concurrency = dict(concurrency)
        self.metrics = metrics
        self.retry_scale = retry_scale
        self.graceful_s = graceful_s
        self._context: Context | None = None
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._opened = False
        for kind in kinds:
            self.app.task(name=kind.name, queue=kind.queue, pass_context=True, retry=_Retries())(self._task(kind))

    # --- the dispatcher side -------------------------------------------------------------------------------

    async def submit(self, session: AsyncSession, job: Job) -> None:
        args = orjson.dumps({"recording_id": job.recording_id}).decode()
        queue = job.queue or self.kinds[job.kind].queue
        await session.execute(_DEFER, {"queue": queue, "task": job.kind, "args": args})

    async def pending(
        self, session: AsyncSession, kinds: Iterable[str], *, running: bool = True
    ) -> set[tuple[str, str]]:
        rows = await session.execute(_PENDING, {"kinds": list(kinds), "stalled_s": STALLED_S if running else -1})
        return {(kind, recording_id) for kind, recording_id in rows}

    async def prune(self, older_than: timedelta) -> None:
        """Forget jobs that ended more than `older_than` ago."""
        await self.app.job_manager.delete_old_jobs(
            nb_hours=max(1, round(older_than.total_seconds() / 3600)),
            include_failed=True,
            include_cancelled=True,
            include_aborted=True,
        )

    # --- the worker side -----------------------------------------------------------------------------------

    async def start(self, context: Context) -> None:
        self._context = context
        await self.app.open_async()
        self._opened = True
        for queue, limit in self.concurrency.items():
            if limit > 0:
                self._workers[queue] = asyncio.create_task(self._work(queue, limit), name=f"procrastinate {queue}")

    async def drain_queues(self, queues: Iterable[str], timeout_s: float) -> bool:
        """Claim no more jobs from these queues and wait until their running jobs ended; whether in time.
        (Cancelling a procrastinate worker is its graceful stop: running jobs go on, for `graceful_s` at most.)"""
        watched = [self._workers[queue] for queue in queues if queue in self._workers]
        for worker in watched:
            worker.cancel()
        if not watched:
            return True
        _, running = await asyncio.wait(watched, timeout=timeout_s)
        return not running

    async def stop(self, timeout_s: float) -> None:
        """Stop every worker: running jobs may end within `graceful_s`, then are cut short and retried later."""
        await self.drain_queues(list(self._workers), timeout_s)
        if self._opened:
            await self.app.close_async()
            self._opened = False

    async def retry_stalled(self, kinds: Iterable[str]) -> int:
        """Hand back the running jobs of these kinds whose workers stopped beating (a crashed or hung process),
        their cut attempt counted; how many.

        A worker that was only hung may still finish such a job later: handlers are idempotent, but
        procrastinate then logs that the job was no longer its to finish. Record jobs are not handed back
        for that reason; the reconciler judges their recordings by the rows instead.
        """
        handed_back = 0
        for kind in kinds:
            stalled = await self.app.job_manager.get_stalled_jobs(task_name=kind, seconds_since_heartbeat=STALLED_S)
            for job in stalled:
                log.warning("job %s of a silent worker is handed back to the queue", job.call_string)
                await self.app.job_manager.retry_job(job)
                handed_back += 1
        return handed_back

    async def _work(self, queue: str, limit: int) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self.app.run_worker_async(
                queues=[queue],
                name=f"recordkit-{queue}",
                concurrency=limit,
                install_signal_handlers=False,
                update_heartbeat_interval=HEARTBEAT_S,
                stalled_worker_timeout=STALLED_S,
                shutdown_graceful_timeout=self.graceful_s,
                # procrastinate misses a job announced while it fetches; its poll bounds that wait.
                fetch_job_polling_interval=POLL_S,
            )

    def _task(self, kind: JobKind[Context]) -> Any:
        async def attempt(job_context: JobContext, recording_id: str) -> None:
            assert self._context is not None, "jobs run only after start()"
            number = job_context.job.attempts + 1
            await self._observe_queue_wait(kind.name, job_context.job.id)
            result = await run_attempt(kind, self._context, recording_id, number, self.metrics)
            if result.outcome is Outcome.RETRY:
                raise RetryLater(result.error, kind.policy.delay_s(number, self.retry_scale))
            if result.outcome is Outcome.GAVE_UP:
                raise GaveUp(result.error)

        attempt.__name__ = kind.name
        return attempt

    async def _observe_queue_wait(self, kind: str, job_id: int | None) -> None:
        try:
            row = await self.app.connector.execute_query_one_async(_QUEUE_WAIT, job_id=job_id)
        except Exception:
            # Only a figure is lost: the attempt itself must not fail for it.
            log.warning("could not read how long job %s waited in the queue", job_id, exc_info=True)
            return
        if row["waited_s"] is not None:
            self.metrics.job_waited(kind, float(row["waited_s"]))
