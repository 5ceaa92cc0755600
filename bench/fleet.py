"""What the fleet costs and how it behaves (issue 14, acceptance 4): recordings per worker core, queue wait under
overload, takeover time, and the extra cost of a recorder joining over WebRTC.

A fleet is a real PostgreSQL (``tests.support.postgres``: the server on 127.0.0.1:5432 when it trusts user
``postgres``, else a throwaway cluster; a fresh database per fleet), one ``recordkit serve --role api,media``
and ``recordkit worker`` processes sharing one data dir (credentials, spool) and one bucket folder
(``--bucket-url file:///…``), each worker with ``--public-url`` the API's, every process at log level
``warning`` (so its log holds only problems). Bots join from *this* process through the API node, each
publishing the synthetic 640x360@30 VP8 + Opus of ``recordkit.bot.synthetic`` as pre-encoded loops (``Bots`` of
``bench.recording_cost``: no encoding, so the bots cost little and none of it is counted as a server's). Every
recording is the default composite: 1280x720 30 fps H.264 + AAC. CPU is utime+stime of each process (all its
threads) from ``/proc/<pid>/stat``; every window also reports this process (bots, polling) and every other
process of the machine (``/proc/stat`` minus those), since another test run on these 2 cores shows up there.

It prints:

1. **Recordings per worker core**: one worker (``RECORDKIT_MAX_RECORDINGS=8``), 1 then 3 concurrent 2-person
   recordings, each in its own meeting: the worker's CPU per wall second over a window while they record, minus
   an idle window just before (same bots, no recording); ÷ N = cores per recording; its inverse = recordings per
   worker core. The media node's CPU in the same windows, minus its idle: what forwarding the bots' media to
   the hidden recorders adds. Every file is downloaded and decoded with ``check_file`` (duration, frozen
   pictures, stale tiles).
2. **Queue wait under overload**: two workers of ``RECORDKIT_MAX_RECORDINGS=1``, four recordings (each its own
   meeting of two bots) started at once, each stopped ``hold_s`` after it reached RECORDING: per recording the
   time from the POST's answer (INVOKED) to RECORDING seen by GET polling every 100 ms, the worker that took it,
   and the ``recordkit_job_queue_wait_seconds{kind="record"}`` sum and count of each worker's ``/metrics``.
3. **Takeover time**: three workers, one 2-person recording; the worker holding it gets (a) ``kill -9`` (same
   host: the reconciler sees the pid gone), (b) SIGSTOP (a hung or remote worker: only its 3 s lease tells;
   SIGCONT once another worker holds the recording), (c) SIGTERM (drain: the recording is handed over), in turn,
   ``hold_s`` apart: the time from the signal until another worker owns the row (``owner_id`` polled every
   50 ms); then the file: the longest still picture within 5 s after each event (``still_spans``/``gap_after_s``
   of ``tests.e2e.test_fleet``: the bots' pictures change every frame, a gap shows the last picture), and its
   duration against ``stopped_time - started_time``.
4. **WebRTCSource vs in-process**: one 2-person recording, measured as in (1), by (a) ``serve --role all`` on
   its own PostgreSQL database (the recorder reads its own room: ``RoomSource``) and (b) the worker of (1)
   joining the ``serve --role api,media`` node as a hidden recorder (``WebRTCSource``), alternating, the order
   turned round each round (ABBA), so the machine's drift falls on both alike. For (b) the cost is the worker's
   and the media node's CPU above their idle baselines; the difference (b) − (a) is what the fleet's recorder
   costs more. With ``--quick`` there is one round.

It is a benchmark: it prints, and never asserts.

Run from the repository root, one bench at a time (``flock`` keeps two measuring runs apart)::

    flock /tmp/rk-bench.lock .venv/bin/python -m bench.fleet            # full run, about 7 minutes
    flock /tmp/rk-bench.lock .venv/bin/python -m bench.fleet --quick    # smoke run, about 2.5 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/fleet.py` needs the root for `recordkit`
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from bench.recording_cost import Bots, FileCheck, RecordingApi, fetch_and_check, problem_lines  # noqa: E402
from bench.support import BenchError, bench_server, cpu_seconds, machine_busy_seconds  # noqa: E402
from recordkit.clock import parse_iso8601  # noqa: E402
from tests.e2e.test_fleet import gap_after_s, still_spans  # noqa: E402
from tests.helpers import CREDENTIALS_ENV  # noqa: E402
from tests.support.postgres import fresh_database, postgres_server  # noqa: E402
from tests.support.server import Served, ServeFailed, recordkit_serve  # noqa: E402

PER_WORKER_LEVELS = (1, 3)  # (1): concurrent recordings on the one worker
BUSY_CORES = 0.15  # other processes' load above which the run warns that the CPU figures are pessimistic


@dataclass(frozen=True)
class Durations:
    """How long each part runs (seconds unless said otherwise)."""

    settle_s: float  # after the bots joined / after RECORDING, before measuring
    idle_s: float  # idle baseline before each recording window
    window_s: float  # measured recording window
    hold_s: float  # (2) how long each recording runs; (3) time between events
    rounds: int  # (4) rounds, each measuring both ways once


QUICK = Durations(settle_s=2, idle_s=5, window_s=10, hold_s=5, rounds=1)
FULL = Durations(settle_s=3, idle_s=12, window_s=30, hold_s=8, rounds=2)


# -- CPU of several processes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Cores used over a span (CPU seconds per wall second) by each named process, this one and all others."""

    cores: dict[str, float]
    bench: float
    postgres: float  # every PostgreSQL process of the machine: the fleet's leases, heartbeats and jobs live there
    others: float
    wall_s: float


def postgres_cpu_seconds() -> dict[int, float]:
    """utime + stime of every PostgreSQL process (postmaster and backends), by pid."""
    found: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):  # a process that ended since the listing
                if Path(entry.path, "comm").read_text().strip() == "postgres":
                    found[int(entry.name)] = cpu_seconds(int(entry.name))
    return found


class Meter:
    """`bench.recording_cost.CpuMeter` for several processes at once: the others' share is the machine's busy
    time minus all of them, so a fleet's own processes never count as someone else's load. PostgreSQL is counted
    apart: in a fleet it does work for the recordings (a backend that ends within the window is missed)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.wall = time.monotonic()
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.postgres = postgres_cpu_seconds()
        self.bench = time.process_time()
        self.machine = machine_busy_seconds()

    def read(self) -> Usage:
        wall = time.monotonic() - self.wall
        used = {name: cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}
        bench = time.process_time() - self.bench
        postgres = sum(s - self.postgres.get(pid, 0.0) for pid, s in postgres_cpu_seconds().items())
        others = max(0.0, machine_busy_seconds() - self.machine - sum(used.values()) - bench - postgres)
        cores = {name: s / wall for name, s in used.items()}
        return Usage(cores, bench / wall, postgres / wall, others / wall, wall)


async def measure(pids: Mapping[str, int], seconds: float) -> Usage:
    meter = Meter(pids)
    await asyncio.sleep(seconds)
    return meter.read()


# -- a fleet ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh database (SQLAlchemy asyncpg URL) on the machine's PostgreSQL or a throwaway cluster."""
    with postgres_server() as server, fresh_database(server) as url:
        yield url


@dataclass(frozen=True)
class Fleet:
    api: Served  # serve --role api,media
    workers: list[Served]

    def processes(self) -> dict[str, Served]:
        return {"api,media": self.api, **{f"worker {i + 1}": w for i, w in enumerate(self.workers)}}


@contextlib.contextmanager
def bench_fleet(work: Path, database_url: str, workers: int, max_recordings: int) -> Iterator[Fleet]:
    """`tests.e2e.test_fleet.fleet` for a benchmark: log level `warning` (its logs are read for problems and its
    CPU measured, so no access log), and a failed start raised as a BenchError."""
    work.mkdir()
    data_dir, bucket = work / "data", work / "shared-bucket"
    bucket_args = ["--bucket-url", bucket.as_uri()]
    env = {**CREDENTIALS_ENV, "RECORDKIT_MAX_RECORDINGS": str(max_recordings), "RECORDKIT_DRAIN_TIMEOUT_S": "20"}
    with ExitStack() as processes:
        try:
            api = processes.enter_context(
                recordkit_serve(
                    data_dir, database_url, env, log_level="warning", args=["--role", "api,media", *bucket_args]
                )
            )
            started = [
                processes.enter_context(
                    recordkit_serve(
                        data_dir,
                        database_url,
                        env,
                        log_level="warning",
                        command_name="worker",
                        args=[*bucket_args, "--public-url", api.base_url],
                    )
                )
                for _ in range(workers)
            ]
        except ServeFailed as error:
            raise BenchError(str(error)) from None
        yield Fleet(api, started)


def log_problems(processes: Mapping[str, Served]) -> list[str]:
    """Every warning, error or traceback line of these processes' logs, prefixed with the process's name."""
    return [f"{name}: {line}" for name, served in processes.items() for line in problem_lines(served, 0)]


class Owners:
    """Reads `recordings.owner_id` on one connection (a new engine per poll, as the e2e test's `column` makes,
    would cost more than the 50 ms between polls)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.lock = asyncio.Lock()  # one connection runs one query at a time; (2) asks from four tasks

    async def of(self, recording_id: str) -> str | None:
        async with self.lock:
            value = await self.connection.fetchval("SELECT owner_id FROM recordings WHERE id = $1", recording_id)
        return None if value is None else str(value)


@contextlib.asynccontextmanager
async def owners_in(database_url: str) -> AsyncIterator[Owners]:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        yield Owners(connection)
    finally:
        await connection.close()


def owner_pid(owner_id: str | None) -> int | None:
    """The pid in a `host:pid:nonce` owner id."""
    return int(owner_id.split(":")[1]) if owner_id else None


# -- (1) and (4): what a recording costs --------------------------------------------------------------


@dataclass
class Cost:
    """N concurrent 2-person recordings measured on some processes: idle window, then recording window."""

    recordings: int
    idle: Usage
    rec: Usage
    checks: list[FileCheck] = field(default_factory=list)

    def added(self, name: str) -> float:
        """Cores per recording `name` used above its idle baseline."""
        return (self.rec.cores[name] - self.idle.cores[name]) / self.recordings

    @property
    def per_recording(self) -> float:
        """Cores per recording above idle, every measured process together."""
        return sum(self.added(name) for name in self.rec.cores)


async def recording_cost(
    api: RecordingApi, pids: Mapping[str, int], recordings: int, d: Durations, folder: Path
) -> tuple[Cost, list[Callable[[], FileCheck]]]:
    """`recordings` meetings of two bots, an idle window, all recorded at once over a window, stopped; the files
    downloaded (the returned calls decode them later, when nothing is being measured)."""
    bots = Bots(api)
    try:
        meetings = [await bots.meeting(2) for _ in range(recordings)]
        await asyncio.sleep(d.settle_s)
        idle = await measure(pids, d.idle_s)
        starts = await asyncio.gather(*(api.start(meeting_id) for meeting_id in meetings))
        seen = await asyncio.gather(*(api.until(s["id"], {"RECORDING"}, 0.1) for s in starts))
        if any(data["status"] != "RECORDING" for data, _ in seen):
            raise BenchError(f"a recording did not start: {[data['status'] for data, _ in seen]}")
        await asyncio.sleep(d.settle_s)
        rec = await measure(pids, d.window_s)
        await asyncio.gather(*(api.stop(s["id"]) for s in starts))
        finals = await asyncio.gather(*(api.until(s["id"], {"UPLOADED"}, 0.1, timeout_s=60) for s in starts))
    finally:
        await bots.leave()
    decoders = [await fetch_and_check(api, data, 2, folder) for data, _ in finals]
    return Cost(recordings, idle, rec), decoders


@dataclass
class CostResults:
    per_worker: list[Cost] = field(default_factory=list)
    rounds: list[tuple[str, Cost]] = field(default_factory=list)  # (4): ("in-process" | "WebRTC", cost)
    problems: list[str] = field(default_factory=list)


async def costs(d: Durations, work: Path) -> CostResults:
    """Parts (1) and (4): a fleet of one worker, and a `serve --role all` on a database of its own, both up
    throughout (the idle one's little CPU lands in `others`)."""
    results = CostResults()
    with ExitStack() as stack:
        fleet = stack.enter_context(bench_fleet(work / "cost-fleet", stack.enter_context(pg_database()), 1, 8))
        alone_dir = work / "cost-all" / "data"
        alone_dir.parent.mkdir()
        alone = stack.enter_context(bench_server(alone_dir, database_url=stack.enter_context(pg_database())))
        fleet_api, alone_api = RecordingApi(fleet.api), RecordingApi(alone)
        fleet_pids = {"worker": fleet.workers[0].pid, "media": fleet.api.pid}
        try:
            await fleet_api.new_app("Fleet bench")
            await alone_api.new_app("Fleet bench")
            for n in PER_WORKER_LEVELS:
                print(f"[{time.strftime('%H:%M:%S')}] (1) {n} recording(s) on one worker …", flush=True)
                cost, decoders = await recording_cost(fleet_api, fleet_pids, n, d, work)
                cost.checks = [await asyncio.to_thread(decode) for decode in decoders]
                results.per_worker.append(cost)
            for round_number in range(1, d.rounds + 1):
                ways: list[tuple[str, RecordingApi, dict[str, int]]] = [
                    ("in-process", alone_api, {"serve --role all": alone.pid}),
                    ("WebRTC", fleet_api, fleet_pids),
                ]
                # Each round turns the order round (ABBA), so a drift of the machine over the run falls on both.
                for name, api, pids in ways if round_number % 2 else ways[::-1]:
                    cost, decoders = await recording_cost(api, pids, 1, d, work)
                    cost.checks = [await asyncio.to_thread(decode) for decode in decoders]
                    print(
                        f"[{time.strftime('%H:%M:%S')}] (4) round {round_number}, {name}:"
                        f" {cost.per_recording:.3f} cores",
                        flush=True,
                    )
                    results.rounds.append((name, cost))
        finally:
            await fleet_api.close()
            await alone_api.close()
        results.problems = log_problems({**fleet.processes(), "serve --role all": alone})
    return results


# -- (2) queue wait ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waited:
    """One recording of (2): INVOKED → RECORDING, who took it, how it ended."""

    invoked_to_recording_s: float
    worker: int | None  # index in the fleet's workers
    status: str


@dataclass
class QueueResults:
    waits: list[Waited] = field(default_factory=list)
    metrics: list[tuple[float, float]] = field(default_factory=list)  # per worker: (sum s, count)
    problems: list[str] = field(default_factory=list)


def queue_wait_metric(text: str) -> tuple[float, float]:
    """The record jobs' `recordkit_job_queue_wait_seconds` sum and count in a /metrics text."""
    found = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for part in found:
            if line.startswith(f'recordkit_job_queue_wait_seconds_{part}{{kind="record"}}'):
                found[part] = float(line.split()[-1])
    return found["sum"], found["count"]


async def queue_wait(d: Durations, work: Path) -> QueueResults:
    """Part (2): four recordings at once on two workers that take one each."""
    results = QueueResults()
    with pg_database() as url, bench_fleet(work / "queue-fleet", url, 2, 1) as fleet:
        api = RecordingApi(fleet.api)
        bots = Bots(api)
        try:
            await api.new_app("Queue bench")
            meetings = [await bots.meeting(2) for _ in range(4)]
            await asyncio.sleep(d.settle_s)
            async with owners_in(url) as owners:

                async def one(meeting_id: str) -> Waited:
                    started = await api.start(meeting_id)
                    invoked = time.time()  # the POST answered: the row is INVOKED
                    data, seen = await api.until(started["id"], {"RECORDING"}, 0.1, timeout_s=120)
                    pid = owner_pid(await owners.of(started["id"]))
                    index = next((i for i, w in enumerate(fleet.workers) if w.pid == pid), None)
                    if data["status"] == "RECORDING":
                        await asyncio.sleep(d.hold_s)
                        await api.stop(started["id"])
                    final, _ = await api.until(started["id"], {"UPLOADED"}, 0.1, timeout_s=60)
                    return Waited(seen - invoked, index, final["status"])

                results.waits = list(await asyncio.gather(*(one(m) for m in meetings)))
            async with httpx.AsyncClient() as client:
                for worker in fleet.workers:
                    results.metrics.append(queue_wait_metric((await client.get(f"{worker.base_url}/metrics")).text))
        finally:
            await bots.leave()
            await api.close()
        results.problems = log_problems(fleet.processes())
    return results


# -- (3) takeover --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Takeover:
    how: str
    struck_at: float  # time.time() of the signal
    taken_after_s: float | None  # None: nobody took it within the timeout
    statuses: frozenset[str]  # what the API showed meanwhile
    gap_s: float = 0.0  # longest still picture after the event, filled in from the file


@dataclass
class TakeoverResults:
    events: list[Takeover] = field(default_factory=list)
    file_s: float = 0.0
    wall_s: float = 0.0
    longest_still_s: float = 0.0
    status: str = ""
    problems: list[str] = field(default_factory=list)


TAKEOVER_TIMEOUT_S = 30


async def takeover(d: Durations, work: Path) -> TakeoverResults:
    """Part (3): one recording through kill -9, SIGSTOP and SIGTERM of the worker holding it."""
    results = TakeoverResults()
    path: Path | None = None
    done: dict[str, Any] = {}
    stopped: list[Served] = []  # SIGSTOPped and not yet continued: continued on the way out whatever happens
    with pg_database() as url, bench_fleet(work / "takeover-fleet", url, 3, 2) as fleet:
        api = RecordingApi(fleet.api)
        bots = Bots(api)
        try:
            await api.new_app("Takeover bench")
            meeting_id = await bots.meeting(2)
            await asyncio.sleep(d.settle_s)
            started = await api.start(meeting_id)
            rid = started["id"]
            data, _ = await api.until(rid, {"RECORDING"}, 0.1)
            if data["status"] != "RECORDING":
                raise BenchError(f"the recording went {data['status']}")
            async with owners_in(url) as owners:

                async def strike(how: str) -> Takeover:
                    first = await owners.of(rid)
                    victim = next((w for w in fleet.workers if w.pid == owner_pid(first)), None)
                    if victim is None:
                        raise BenchError(f"the recording is held by no worker of the fleet: {first}")
                    struck_at, struck = time.time(), time.monotonic()
                    if how == "kill -9":
                        victim.process.kill()
                        victim.process.wait()  # reaped at once, as a supervisor would: the pid is gone
                    elif how == "SIGSTOP":
                        os.kill(victim.pid, signal.SIGSTOP)
                        stopped.append(victim)
                    else:
                        os.kill(victim.pid, signal.SIGTERM)
                    statuses: set[str] = set()
                    taken: float | None = None
                    while time.monotonic() - struck < TAKEOVER_TIMEOUT_S:
                        owner = await owners.of(rid)
                        pid = owner_pid(owner)
                        if owner != first and pid is not None and pid != victim.pid:
                            taken = time.monotonic() - struck
                            break
                        statuses.add((await api.data("GET", f"/{api.app_id}/recordings/{rid}"))["status"])
                        await asyncio.sleep(0.05)
                    if how == "SIGSTOP":
                        os.kill(victim.pid, signal.SIGCONT)
                        stopped.remove(victim)
                    return Takeover(how, struck_at, taken, frozenset(statuses))

                for how in ("kill -9", "SIGSTOP", "SIGTERM"):
                    await asyncio.sleep(d.hold_s)
                    event = await strike(how)
                    results.events.append(event)
                    shown = "never" if event.taken_after_s is None else f"{event.taken_after_s:.2f} s"
                    print(f"[{time.strftime('%H:%M:%S')}] (3) {how}: taken over after {shown}", flush=True)
            await asyncio.sleep(d.hold_s)
            await api.stop(rid)
            done, _ = await api.until(rid, {"UPLOADED"}, 0.1, timeout_s=60)
            results.status = done["status"]
            if done["status"] == "UPLOADED":
                path = await api.download(done["download_url"], work / "taken-over.mp4")
        finally:
            for victim in stopped:
                os.kill(victim.pid, signal.SIGCONT)
            await bots.leave()
            await api.close()
        results.problems = log_problems(fleet.processes())
    if path is not None:
        began = parse_iso8601(done["started_time"]).replace(tzinfo=UTC).timestamp()
        results.wall_s = (parse_iso8601(done["stopped_time"]) - parse_iso8601(done["started_time"])).total_seconds()
        spans = await asyncio.to_thread(still_spans, path)
        results.file_s = await asyncio.to_thread(file_duration_s, path)
        results.longest_still_s = max((length for _, length in spans), default=0.0)
        ends = [e.struck_at - began for e in results.events[1:]] + [float("inf")]
        results.events = [
            Takeover(
                e.how, e.struck_at, e.taken_after_s, e.statuses, gap_after_s(until(spans, end), e.struck_at - began)
            )
            for e, end in zip(results.events, ends, strict=True)
        ]
    return results


def until(spans: list[tuple[float, float]], media_s: float) -> list[tuple[float, float]]:
    """The still spans that begin before the next event's window (`gap_after_s` looks 5 s ahead; with short
    `hold_s` the next event's gap would count as this one's too)."""
    return [(at, length) for at, length in spans if at < media_s - 0.5]


def file_duration_s(path: Path) -> float:
    """The container's duration, as a player shows it."""
    import av

    with av.open(str(path)) as container:
        return (container.duration or 0) / av.time_base


# -- printing ---------------------------------------------------------------------------------------


def file_verdict(checks: list[FileCheck]) -> str:
    problems = [f"#{i + 1}: {p}" for i, c in enumerate(checks) for p in c.problems()]
    return "held" if checks and not problems else "; ".join(problems)[:160] or "no file"


def print_costs(r: CostResults) -> None:
    print("\n1. Recordings per worker core (2-person 1280x720 H.264 composites, one worker, one media node)")
    header = (
        f"{'N':>3}{'wrk idle':>10}{'wrk rec':>9}{'wrk/rec':>9}{'rec/core':>10}{'media idle':>12}{'media rec':>11}"
        f"{'media/rec':>11}{'pg idle':>8}{'pg rec':>8}{'bench':>7}{'others':>8}  files"
    )
    print(header)
    print("-" * len(header))
    for c in r.per_worker:
        per = c.added("worker")
        print(
            f"{c.recordings:>3}{c.idle.cores['worker']:>10.3f}{c.rec.cores['worker']:>9.3f}{per:>9.3f}"
            f"{1 / per if per > 0 else float('nan'):>10.2f}{c.idle.cores['media']:>12.3f}{c.rec.cores['media']:>11.3f}"
            f"{c.added('media'):>11.3f}{c.idle.postgres:>8.3f}{c.rec.postgres:>8.3f}{c.rec.bench:>7.3f}"
            f"{c.rec.others:>8.3f}  {file_verdict(c.checks)}"
        )
    if r.per_worker:
        c = r.per_worker[0]
        print(
            f"   (cores = CPU s per wall s over {c.rec.wall_s:.0f} s recording, idle over {c.idle.wall_s:.0f} s just"
            " before with the same bots; wrk/rec and media/rec = (recording − idle) ÷ N; rec/core = 1 ÷ wrk/rec;"
            " files: check_file of bench.recording_cost — duration within 3 %, no picture shown > 250 ms, ≤ 1 %"
            " stale tiles; pg = every PostgreSQL process; bench = this process: bots, polling; others = the rest of"
            " the machine, the idle `serve --role all` of (4) included)"
        )

    print("\n4. Extra cost of a WebRTCSource recorder over the in-process one (one 2-person recording)")
    header = (
        f"{'recorder':<12}{'rounds':>7}{'mean':>8}{'min':>8}{'max':>8}{'of which media':>16}{'pg +':>7}{'others':>8}"
        "  files"
    )
    print(header)
    print("-" * len(header))
    means: dict[str, float] = {}
    for name in ("in-process", "WebRTC"):
        rows = [c for way, c in r.rounds if way == name]
        if not rows:
            continue
        values = [c.per_recording for c in rows]
        means[name] = statistics.fmean(values)
        media = statistics.fmean(c.added("media") for c in rows) if name == "WebRTC" else float("nan")
        media_text = f"{media:>16.3f}" if name == "WebRTC" else f"{'-':>16}"
        print(
            f"{name:<12}{len(rows):>7}{means[name]:>8.3f}{min(values):>8.3f}{max(values):>8.3f}{media_text}"
            f"{statistics.fmean(c.rec.postgres - c.idle.postgres for c in rows):>+7.3f}"
            f"{max(c.rec.others for c in rows):>8.3f}  {file_verdict([ch for c in rows for ch in c.checks])}"
        )
    if len(means) == 2:
        extra = means["WebRTC"] - means["in-process"]
        share = f" ({100 * extra / means['in-process']:+.0f} %)" if means["in-process"] > 0 else ""
        print(f"   WebRTC − in-process: {extra:+.3f} cores per recording{share}")
    print(
        "   (in-process: `serve --role all` on PostgreSQL, its CPU above idle; WebRTC: the worker's and the media"
        " node's CPU above their idle baselines; the two ways alternate, round after round; pg +: PostgreSQL's CPU"
        " recording − idle, mean, not in the figures; others: most the rest of the machine used in a window)"
    )


def print_queue(r: QueueResults) -> None:
    print("\n2. Queue wait under overload (2 workers of RECORDKIT_MAX_RECORDINGS=1, 4 recordings started at once)")
    header = f"{'recording':>10}{'INVOKED → RECORDING':>22}{'worker':>8}  status"
    print(header)
    print("-" * len(header))
    for index, w in enumerate(r.waits):
        worker = "-" if w.worker is None else str(w.worker + 1)
        print(f"{index + 1:>10}{w.invoked_to_recording_s:>20.2f} s{worker:>8}  {w.status}")
    for index, (total, count) in enumerate(r.metrics):
        mean = total / count if count else float("nan")
        print(
            f'   worker {index + 1} /metrics: recordkit_job_queue_wait_seconds{{kind="record"}} sum {total:.2f} s,'
            f" count {count:.0f} (mean {mean:.2f} s)"
        )
    print("   (GET polled every 100 ms from the POST's answer; each recording stopped a fixed time after RECORDING)")


def print_takeover(r: TakeoverResults) -> None:
    print("\n3. Takeover time (three workers, one 2-person recording, the holder struck three times in turn)")
    header = f"{'event':<10}{'taken over after':>18}{'gap in file':>13}  API showed"
    print(header)
    print("-" * len(header))
    for e in r.events:
        taken = "never" if e.taken_after_s is None else f"{e.taken_after_s:.2f} s"
        print(f"{e.how:<10}{taken:>18}{e.gap_s:>11.2f} s  {', '.join(sorted(e.statuses)) or '-'}")
    print(
        f"   file: {r.file_s:.2f} s for {r.wall_s:.2f} s of wall clock (stopped_time − started_time), difference"
        f" {r.file_s - r.wall_s:+.2f} s; longest still picture anywhere {r.longest_still_s:.2f} s; {r.status}"
    )
    print(
        "   (taken over: signal → owner_id of another worker, polled every 50 ms; gap: longest still picture within"
        " 5 s after the signal; SIGSTOP: SIGCONT once taken over)"
    )


def print_problems(parts: Mapping[str, list[str]]) -> None:
    for part, lines in parts.items():
        if lines:
            print(f"\nLog problems in {part}: {len(lines)} line(s), first ones:")
            for line in lines[:4]:
                print(f"   {line[:300]}")


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Results:
    costs: CostResults | None = None
    queue: QueueResults | None = None
    takeover: TakeoverResults | None = None
    phase_s: dict[str, float] = field(default_factory=dict)


async def run(d: Durations, work: Path) -> Results:
    results = Results()

    async def timed(name: str, part: Any) -> Any:
        began = time.monotonic()
        print(f"[{time.strftime('%H:%M:%S')}] {name} …", flush=True)
        try:
            return await part
        finally:
            results.phase_s[name] = time.monotonic() - began

    results.costs = await timed("(1) and (4) cost", costs(d, work))
    results.queue = await timed("(2) queue wait", queue_wait(d, work))
    results.takeover = await timed("(3) takeover", takeover(d, work))
    return results


def print_results(r: Results, quick: bool) -> None:
    print(
        f"\nFleet: PostgreSQL, `serve --role api,media` + `recordkit worker`s; 1280x720 30 fps H.264 + AAC composites;"
        f" bots 640x360@30 VP8 + Opus (pre-encoded loops) in the bench process; {os.cpu_count()} CPUs;"
        f" {'quick' if quick else 'full'} run"
    )
    if r.costs is not None:
        print_costs(r.costs)
    if r.queue is not None:
        print_queue(r.queue)
    if r.takeover is not None:
        print_takeover(r.takeover)
    print_problems(
        {
            "(1) and (4)": r.costs.problems if r.costs else [],
            "(2)": r.queue.problems if r.queue else [],
            "(3)": r.takeover.problems if r.takeover else [],
        }
    )
    windows = [*(r.costs.per_worker if r.costs else []), *(c for _, c in (r.costs.rounds if r.costs else []))]
    busy = max((c.rec.others for c in windows), default=0.0)
    if busy > BUSY_CORES:
        print(
            f"\nWARNING: other processes used up to {busy:.2f} cores during measured windows; the CPU figures (1, 4)"
            " are pessimistic. Run on a quiet machine."
        )
    print("\nPhases: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in r.phase_s.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: short windows, one round, about 2.5 minutes")
    args = parser.parse_args(argv)
    d = QUICK if args.quick else FULL
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="recordkit-fleet-bench-") as work:
        try:
            results = asyncio.run(run(d, Path(work)))
        except BenchError as error:
            print(f"FAILED: {error}", file=sys.stderr, flush=True)
            return 1
    print_results(results, args.quick)
    print(f"Total run time: {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
