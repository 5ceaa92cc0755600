"""How quickly the two job engines start a job once the transaction that wrote it commits, and how many
jobs a second they get through: the embedded runner on a SQLite file and procrastinate on PostgreSQL.

Both run here exactly as `recordkit serve` runs them (recordkit/jobs/), with a job kind whose handler only
notes when it started. Latency: one job at a time, each written in its own transaction; from the commit
returning to the handler starting (p50/p99/max). Throughput: a burst of jobs, each in its own transaction
as a real state change writes it, taken by a worker running 4 at a time; jobs per second from the first
commit to the last handler's end, and this process's CPU per job (the producer, the engine and, for
SQLite, the database itself; PostgreSQL's own backends are not counted).

    .venv/bin/python -m bench.job_latency [--jobs 200] [--burst 2000] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.support import cpu_seconds
from recordkit.db.bus import LocalBus
from recordkit.db.engine import Database
from recordkit.db.migrate import upgrade
from recordkit.jobs.dispatcher import Job, JobEngine
from recordkit.jobs.embedded import EmbeddedJobs
from recordkit.jobs.kinds import JobKind, RetryPolicy
from recordkit.jobs.procrastinated import ProcrastinateJobs
from recordkit.metrics import Metrics
from recordkit.node import new_node_id
from tests.support.postgres import fresh_database, postgres_server

CONCURRENCY = 4


@dataclass
class Starts:
    """When each job's handler started and ended, by recording id, and a wake-up per awaited id."""

    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    waiting: dict[str, asyncio.Event] = field(default_factory=dict)
    burst_left: int = 0
    burst_done: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, recording_id: str) -> None:
        self.started[recording_id] = time.perf_counter()
        self.ended[recording_id] = time.perf_counter()
        if recording_id in self.waiting:
            self.waiting[recording_id].set()
        if recording_id.startswith("burst-"):
            self.burst_left -= 1
            if not self.burst_left:
                self.burst_done.set()


async def never_gives_up(_starts: Starts, _recording_id: str, _error: BaseException) -> None:
    return None


KIND = JobKind("bench", "bench", RetryPolicy(1, 1.0, 1.0), lambda starts, rid: starts.run(rid), never_gives_up)


@contextlib.asynccontextmanager
async def engine_on(backend: str) -> AsyncIterator[tuple[Database, JobEngine]]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'jobs.db'}"
            await asyncio.to_thread(upgrade, url)
            db = Database(url)
            yield db, EmbeddedJobs(db, LocalBus(), [KIND], new_node_id(), {"bench": CONCURRENCY}, metrics=Metrics())
            await db.close()
        return
    with postgres_server() as server, fresh_database(server) as url:
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        yield db, ProcrastinateJobs(url, [KIND], {"bench": CONCURRENCY}, metrics=Metrics())
        await db.close()


async def submit(db: Database, engine: JobEngine, recording_id: str) -> float:
    """Write one job in its own transaction; the instant its commit returned."""
    async with db.write() as session:
        await engine.submit(session, Job("bench", recording_id))
    return time.perf_counter()


async def measure(backend: str, jobs: int, burst: int) -> dict[str, Any]:
    async with engine_on(backend) as (db, engine):
        starts = Starts()
        await engine.start(starts)
        try:
            for warm_up in range(10):
                starts.waiting[f"warm-{warm_up}"] = asyncio.Event()
                await submit(db, engine, f"warm-{warm_up}")
                await starts.waiting[f"warm-{warm_up}"].wait()
            latencies_ms = []
            for index in range(jobs):
                rid = f"one-{index}"
                starts.waiting[rid] = asyncio.Event()
                committed = await submit(db, engine, rid)
                await asyncio.wait_for(starts.waiting[rid].wait(), 30)
                latencies_ms.append((starts.started[rid] - committed) * 1000)
            starts.burst_left = burst
            cpu_before, began = cpu_seconds(os.getpid()), time.perf_counter()
            for index in range(burst):
                await submit(db, engine, f"burst-{index}")
            await asyncio.wait_for(starts.burst_done.wait(), 300)
            took_s = max(starts.ended[f"burst-{index}"] for index in range(burst)) - began
            cpu_s = cpu_seconds(os.getpid()) - cpu_before
        finally:
            await engine.stop(10)
    latencies_ms.sort()
    return {
        "p50": statistics.median(latencies_ms),
        "p99": latencies_ms[min(len(latencies_ms) - 1, round(0.99 * len(latencies_ms)))],
        "max": latencies_ms[-1],
        "jobs_per_s": burst / took_s,
        "cpu_ms_per_job": cpu_s / burst * 1000,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200, help="jobs timed one at a time (default 200)")
    parser.add_argument("--burst", type=int, default=2000, help="jobs in the throughput burst (default 2000)")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    names = {"sqlite": "embedded runner, SQLite", "postgresql": "procrastinate 3.10, PostgreSQL"}
    print(f"commit → handler start over {args.jobs} jobs; a burst of {args.burst} jobs, {CONCURRENCY} at a time")
    print(f"{'engine':32} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'jobs/s':>8} {'CPU ms/job':>11}")
    for backend in args.backends:
        figures = await measure(backend, args.jobs, args.burst)
        print(
            f"{names[backend]:32} {figures['p50']:8.1f} {figures['p99']:8.1f} {figures['max']:8.1f}"
            f" {figures['jobs_per_s']:8.0f} {figures['cpu_ms_per_job']:11.2f}",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
