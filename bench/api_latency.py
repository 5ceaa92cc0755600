"""API latency of the Recordings routes over HTTP, with a large seeded database.

What it measures, per database backend (SQLite file, PostgreSQL):

* ``start``        POST   .../recordings                    (one fresh ACTIVE meeting per call; each recording
                                                                 is stopped right after, untimed, its CPU counted)
* ``get one``      GET    .../recordings/{id}               (random seeded ids)
* ``list``         GET    .../recordings?per_page=100&status=UPLOADED
* ``list active``  GET    .../recordings?per_page=100&status=RECORDING,PAUSED
* ``list deep``    GET    .../recordings?per_page=100&status=UPLOADED&page_no=<middle page>
* ``healthz``      GET    /healthz (the HTTP + framework floor, no database)

For each backend the script migrates an empty database, bulk-seeds it with SQLAlchemy Core
(one app, ~1,000 meetings, 100,000 recordings with mixed statuses spread over six months, every
column filled like a real row), starts a real ``recordkit serve`` subprocess, waits for
``/healthz``, warms up, then times each request from one keep-alive ``httpx.Client``. It prints
p50 / p99 / mean latency (client-side wall time, milliseconds) and the CPU time spent per request
by the server process, by the PostgreSQL backends serving it, and by this client, read from
``/proc/<pid>/stat``. Everything it creates (temp data dirs, the PostgreSQL database) is removed.

On PostgreSQL the seeded tables get ``VACUUM ANALYZE`` (what autovacuum does shortly after a
bulk load in a default installation; pass ``--no-vacuum`` to measure without statistics). On
SQLite nothing is analysed, because recordkit never runs ``ANALYZE``.

It is a benchmark: it prints figures and the targets next to them, and never asserts.

Run from the repository root::

    .venv/bin/python -m bench.api_latency                         # both backends, 100,000 rows
    .venv/bin/python -m bench.api_latency --quick                 # smoke run: 10,000 rows
    .venv/bin/python -m bench.api_latency --backends sqlite --recordings 50000

PostgreSQL comes from ``tests.support.postgres`` (the server on 127.0.0.1:5432 when it trusts
user ``postgres``, else a throwaway cluster).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson
from sqlalchemy import JSON, Column, MetaData, Table, insert, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/api_latency.py` needs the root for `tests.support`
    sys.path.insert(0, str(ROOT))

from bench.support import BenchError, bench_server, cpu_seconds  # noqa: E402
from tests.helpers import ACCOUNT_ID, API_TOKEN, BASE  # noqa: E402
from tests.support.server import Served  # noqa: E402

BATCH = 5_000
HISTORY_DAYS = 180
TARGET_GET_P50_MS = 5.0
TARGET_LIST_P50_MS = 25.0


# -- sizes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How much to seed and how many requests to time."""

    recordings: int
    meetings: int
    gets: int
    lists: int
    starts: int
    warmup: int


def sizes_from(args: argparse.Namespace) -> Sizes:
    recordings = args.recordings if args.recordings is not None else (10_000 if args.quick else 100_000)
    meetings = args.meetings if args.meetings is not None else max(100, min(1_000, recordings // 100))
    if args.quick:
        return Sizes(recordings, meetings, gets=100, lists=40, starts=40, warmup=10)
    return Sizes(recordings, meetings, gets=500, lists=200, starts=200, warmup=30)


# -- seeding --------------------------------------------------------------------------------------


def _seed_table(name: str) -> Table:
    """A copy of the model's table whose JSON columns store Python None as SQL NULL.

    (The models' JSON type writes None as the JSON literal `null`; the ORM omits unset columns,
    so real rows hold SQL NULL there.)
    """
    from recordkit.db.models import Base

    source = Base.metadata.tables[name]
    columns = [
        Column(col.name, JSON(none_as_null=True) if isinstance(col.type, JSON) else col.type) for col in source.columns
    ]
    return Table(name, MetaData(), *columns)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass
class Seeded:
    """What the timed requests need to know about the seeded rows."""

    app_id: str
    recording_ids: list[str]
    fresh_meeting_ids: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class Seeder:
    """Builds realistic rows: one app, meetings, and recordings in every status."""

    STORAGE: ClassVar[dict[str, str]] = {
        "type": "aws",
        "bucket": "acme-recordings",
        "region": "eu-west-1",
        "path": "meetings/",
    }

    def __init__(self, sizes: Sizes, public_url: str, seed: int) -> None:
        from recordkit.recording import config as rconfig

        self.sizes = sizes
        self.public_url = public_url
        self.rng = random.Random(seed)
        self.now = _ms(datetime.now(UTC).replace(tzinfo=None))
        self.app_id = _uuid(self.rng)
        default = rconfig.resolve(rconfig.Levels(request={}, meeting={}, server={}))
        self.base_config = {k: v for k, v in default.items() if k != "storage_config"}
        self.rconfig = rconfig

    def app(self) -> dict[str, Any]:
        created = self.now - timedelta(days=HISTORY_DAYS + 30)
        return {"id": self.app_id, "account_id": ACCOUNT_ID, "name": "Bench Co", "created_at": created}

    def meeting(self, index: int, fresh: bool) -> dict[str, Any]:
        rng = self.rng
        created = self.now - timedelta(seconds=rng.uniform(3600, (HISTORY_DAYS + 20) * 86400))
        configured = not fresh and rng.random() < 0.3
        return {
            "id": _uuid(rng),
            "app_id": self.app_id,
            "title": f"{rng.choice(('Weekly sync', 'Standup', 'Design review', 'All hands', '1:1'))} {index}",
            "record_on_start": False,
            "live_stream_on_start": False,
            "persist_chat": rng.random() < 0.5,
            "summarize_on_end": False,
            "transcribe_on_end": False,
            "ai_config": None,
            "session_keep_alive_time_in_secs": 60.0,
            "status": "ACTIVE" if fresh or rng.random() < 0.95 else "INACTIVE",
            "recording_config": (
                {"max_seconds": 7200, "file_name_prefix": "team", "video_config": {"width": 1920, "height": 1080}}
                if configured
                else None
            ),
            "recording_secrets": None,
            "created_at": _ms(created),
            "updated_at": _ms(created),
        }

    def statuses(self, meeting_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(meeting_id, status) for every recording: at most one active recording per meeting.

        100,000 recordings over six months is ~550 a day; at about an hour each, a few dozen are
        being captured at any moment (0.04 %, 40 at 100,000 rows) and a few more are uploading.
        """
        rng, total = self.rng, self.sizes.recordings
        n_active = min(len(meeting_ids), max(3, round(total * 0.0004)))
        n_uploading = max(1, round(total * 0.0002))
        active_meetings = rng.sample(list(meeting_ids), n_active)
        plan = [(m, rng.choices(("RECORDING", "PAUSED", "INVOKED"), (70, 20, 10))[0]) for m in active_meetings]
        # Some meetings record far more often than others.
        weights = [1 / (rank + 1) ** 0.7 for rank in range(len(meeting_ids))]
        rest = total - n_active
        picks = rng.choices(list(meeting_ids), weights=weights, k=rest)
        for index, meeting_id in enumerate(picks):
            if index < n_uploading:
                status = "UPLOADING"
            else:
                status = "ERRORED" if rng.random() < 0.05 else "UPLOADED"
            plan.append((meeting_id, status))
        rng.shuffle(plan)
        return plan

    def recording(self, meeting_id: str, status: str) -> dict[str, Any]:
        rng = self.rng
        recording_id = _uuid(rng)
        if status in ("RECORDING", "PAUSED", "INVOKED"):
            invoked = self.now - timedelta(seconds=rng.uniform(60, 3 * 3600))
        elif status == "UPLOADING":
            invoked = self.now - timedelta(seconds=rng.uniform(3600, 3 * 3600))
        else:
            invoked = self.now - timedelta(seconds=rng.uniform(3 * 3600, HISTORY_DAYS * 86400))
        invoked = _ms(invoked)
        track = status in ("UPLOADED", "ERRORED") and rng.random() < 0.03
        external = not track and rng.random() < 0.1
        prefix = rng.choice((None, "team", "weekly_sync"))
        name = (
            self.rconfig.TRACK_FILE_TEMPLATE
            if track
            else self.rconfig.composite_file_name(prefix, meeting_id, round(invoked.timestamp() * 1000), "mp4")
        )
        started = None if status == "INVOKED" else _ms(invoked + timedelta(seconds=rng.uniform(1.5, 6)))
        errored_early = status == "ERRORED" and rng.random() < 0.4
        if errored_early:
            started = None
        duration = rng.uniform(120, 2 * 3600)
        stopped = None
        paused_ms = rng.choice((0, 0, 0, 0, rng.randint(5_000, 600_000)))
        paused_at = None
        stop_reason = None
        file_size = None
        download_url: Any = None
        expiry = None
        if status == "PAUSED":
            paused_at = _ms(self.now - timedelta(seconds=rng.uniform(5, 60)))
        if status in ("UPLOADING", "UPLOADED") or (status == "ERRORED" and not errored_early):
            assert started is not None
            stopped = _ms(min(started + timedelta(seconds=duration), self.now - timedelta(seconds=30)))
            stop_reason = rng.choices(
                (
                    {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}},
                    {"reason": "ALL_PEERS_LEFT", "caller": None},
                    {"reason": "INTERNAL_ERROR", "caller": None},
                ),
                (60, 38, 2),
            )[0]
            file_size = int(duration * rng.uniform(80_000, 250_000))
        elif status == "ERRORED":
            stopped = _ms(invoked + timedelta(seconds=rng.uniform(5, 600)))
            stop_reason = {"reason": "INTERNAL_ERROR", "caller": None}
        if status == "ERRORED":
            stop_reason = {"reason": "INTERNAL_ERROR", "caller": None}
            file_size = None
        if status == "UPLOADED":
            assert stopped is not None
            expiry = _ms(stopped + timedelta(days=7))
            signature = f"{rng.getrandbits(256):064x}"
            link = f"{self.public_url}/files/{recording_id}/%s?expires={int(expiry.timestamp())}&signature={signature}"
            download_url = (
                [link % f"default_{_uuid(rng)}_audio.webm" for _ in range(rng.randint(2, 6))] if track else link % name
            )
        config = (
            {"layers": {"default": {"file_name_prefix": "default", "media_kind": "audio"}}, "user_ids": None}
            if track
            else {**self.base_config, "file_name_prefix": prefix, "max_seconds": rng.choice((3600, 7200, 86400))}
        )
        return {
            "id": recording_id,
            "app_id": self.app_id,
            "meeting_id": meeting_id,
            "type": "TRACK" if track else "COMPOSITE",
            "status": status,
            "invoked_time": invoked,
            "started_time": started,
            "stopped_time": stopped,
            "paused_at": paused_at,
            "paused_total_ms": paused_ms if started else 0,
            "output_file_name": name,
            "file_size": file_size,
            "download_url": download_url,
            "download_url_expiry": expiry,
            "audio_download_url": None,
            "session_id": _uuid(rng) if started else None,
            "start_reason": {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}},
            "stop_reason": stop_reason,
            "allow_multiple": False,
            "config": config,
            "storage_config": self.STORAGE if external else None,
            "storage_secrets": "sealed:" + "x" * 120 if external and status not in ("UPLOADED", "ERRORED") else None,
            "updated_at": stopped or started or invoked,
        }


def _batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


async def _seed(url: str, seeder: Seeder, vacuum: bool) -> Seeded:
    sizes = seeder.sizes
    history = [seeder.meeting(i, fresh=False) for i in range(sizes.meetings)]
    fresh = [seeder.meeting(sizes.meetings + i, fresh=True) for i in range(sizes.starts + sizes.warmup)]
    plan = seeder.statuses([m["id"] for m in history])
    recordings = [seeder.recording(meeting_id, status) for meeting_id, status in plan]
    counts: dict[str, int] = {}
    for row in recordings:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    engine = create_async_engine(
        url, json_serializer=lambda v: orjson.dumps(v).decode(), json_deserializer=orjson.loads
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(_seed_table("apps")), [seeder.app()])
            for batch in _batches(history + fresh):
                await conn.execute(insert(_seed_table("meetings")), batch)
            table = _seed_table("recordings")
            for batch in _batches(recordings):
                await conn.execute(insert(table), batch)
        if vacuum and not url.startswith("sqlite"):
            async with engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await auto.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()
    return Seeded(
        app_id=seeder.app_id,
        recording_ids=[row["id"] for row in recordings],
        fresh_meeting_ids=[m["id"] for m in fresh],
        counts=counts,
    )


def seed_database(url: str, sizes: Sizes, public_url: str, seed: int, vacuum: bool) -> Seeded:
    """Migrate `url`, then bulk-insert the rows; returns ids the requests will use."""
    from recordkit.db.migrate import upgrade

    upgrade(url)
    started = time.perf_counter()
    seeded = asyncio.run(_seed(url, Seeder(sizes, public_url, seed), vacuum))
    seeded.seconds = time.perf_counter() - started
    return seeded


# -- the database's CPU ---------------------------------------------------------------------------


def postgres_backends(database: str) -> dict[int, float]:
    """CPU seconds of every PostgreSQL backend connected to `database`, by pid."""
    found: dict[int, float] = {}
    needle = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"postgres: ") and needle in cmdline.replace(b"\0", b" "):
            with contextlib.suppress(OSError):  # the backend ended since the listing
                found[int(entry.name)] = cpu_seconds(int(entry.name))
    return found


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str] | None = None
    body: dict[str, Any] | None = None


@dataclass
class Result:
    backend: str
    operation: str
    latencies_ms: list[float]
    server_cpu_s: float
    db_cpu_s: float | None
    client_cpu_s: float

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile."""
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]

    @property
    def mean(self) -> float:
        return sum(self.latencies_ms) / len(self.latencies_ms)

    def per_request_ms(self, seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds * 1000 / len(self.latencies_ms):.2f}"


class Meter:
    """Times calls through one keep-alive client and samples CPU of the server and its database."""

    def __init__(self, backend: str, server: Served, database: str | None) -> None:
        self.backend = backend
        self.server = server
        self.database = database
        self.client = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=60
        )

    def close(self) -> None:
        self.client.close()

    def send(self, call: Call) -> httpx.Response:
        response = self.client.request(call.method, call.path, params=call.params, json=call.body)
        if response.status_code != 200:
            raise BenchError(
                f"{call.method} {call.path} {call.params or ''} answered {response.status_code}: "
                f"{response.text[:800]}\n--- server log ---\n{self.server.log_tail()}"
            )
        return response

    def measure(
        self,
        operation: str,
        warmup: Sequence[Call],
        timed: Sequence[Call],
        then: Callable[[httpx.Response], None] | None = None,
    ) -> Result:
        """Time each of `timed` after sending `warmup`; `then` (untimed, its CPU counted) follows every call."""
        for call in warmup:
            response = self.send(call)
            if then is not None:
                then(response)
        pid = self.server.pid
        server_before = cpu_seconds(pid)
        db_before = postgres_backends(self.database) if self.database else {}
        client_before = time.process_time()
        latencies: list[float] = []
        for call in timed:
            began = time.perf_counter()
            response = self.send(call)
            latencies.append((time.perf_counter() - began) * 1000)
            if then is not None:
                then(response)
        client_cpu = time.process_time() - client_before
        server_cpu = cpu_seconds(pid) - server_before
        db_cpu: float | None = None
        if self.database:
            after = postgres_backends(self.database)
            db_cpu = sum(cpu - db_before.get(p, 0.0) for p, cpu in after.items())
        return Result(self.backend, operation, latencies, server_cpu, db_cpu, client_cpu)


def run_requests(meter: Meter, seeded: Seeded, sizes: Sizes, rng: random.Random) -> list[Result]:
    base = f"{BASE}/{seeded.app_id}/recordings"
    results: list[Result] = []
    warm = sizes.warmup

    health = [Call("GET", "/healthz")] * (sizes.gets + warm)
    results.append(meter.measure("healthz (no database)", health[:warm], health[warm:]))

    ids = rng.sample(seeded.recording_ids, sizes.gets + warm)
    gets = [Call("GET", f"{base}/{recording_id}") for recording_id in ids]
    results.append(meter.measure("get one", gets[:warm], gets[warm:]))

    def listing(label: str, params: dict[str, str]) -> None:
        calls = [Call("GET", base, params)] * (sizes.lists + warm)
        results.append(meter.measure(label, calls[:warm], calls[warm:]))

    listing("list status=UPLOADED", {"per_page": "100", "status": "UPLOADED"})
    listing("list status=RECORDING,PAUSED", {"per_page": "100", "status": "RECORDING,PAUSED"})
    first = meter.send(Call("GET", base, {"per_page": "100", "status": "UPLOADED"})).json()
    pages = max(1, math.ceil(first["paging"]["total_count"] / 100))
    deep = max(1, pages // 2)
    listing(f"list UPLOADED page {deep}/{pages}", {"per_page": "100", "status": "UPLOADED", "page_no": str(deep)})

    starts = [
        Call("POST", base, body={"meeting_id": meeting_id, "file_name_prefix": "bench", "max_seconds": 3600})
        for meeting_id in seeded.fresh_meeting_ids
    ]

    def stop(started: httpx.Response) -> None:
        # Each start launches a real recorder; left running, hundreds of them would be measured instead of the API.
        meter.send(Call("PUT", f"{base}/{started.json()['data']['id']}", body={"action": "stop"}))

    results.append(meter.measure("start (POST, fresh meeting)", starts[:warm], starts[warm:], then=stop))
    return results


# -- backends -------------------------------------------------------------------------------------


@dataclass
class BackendRun:
    backend: str
    results: list[Result]
    seeded: Seeded
    server_cpu_total_s: float
    seconds: float


def run_backend(backend: str, sizes: Sizes, args: argparse.Namespace) -> BackendRun:
    began = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="recordkit-bench-")))
        data_dir = work / "data"  # the server's log goes next to it, into `work`
        data_dir.mkdir()
        database: str | None = None
        if backend == "sqlite":
            from recordkit.config import sqlite_url

            url = sqlite_url(data_dir)
        else:
            from tests.support.postgres import PostgresUnavailable, fresh_database, postgres_server

            try:
                url = stack.enter_context(fresh_database(stack.enter_context(postgres_server())))
            except PostgresUnavailable as error:
                raise BenchError(str(error)) from None
            database = url.rsplit("/", 1)[1]
        print(f"[{backend}] migrating and seeding {sizes.recordings:,} recordings …", flush=True)
        seeded = seed_database(url, sizes, "http://127.0.0.1:8787", args.seed, vacuum=not args.no_vacuum)
        mix = ", ".join(f"{status} {count:,}" for status, count in sorted(seeded.counts.items()))
        print(f"[{backend}] seeded in {seeded.seconds:.1f} s ({mix})", flush=True)
        server = stack.enter_context(bench_server(data_dir, database_url=url))
        meter = Meter(backend, server, database)
        stack.callback(meter.close)
        results = run_requests(meter, seeded, sizes, random.Random(args.seed + 1))
        server_cpu = cpu_seconds(server.pid)
        return BackendRun(backend, results, seeded, server_cpu, time.perf_counter() - began)


def print_table(runs: Sequence[BackendRun], sizes: Sizes) -> None:
    header = (
        f"{'backend':<11}{'operation':<34}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}"
        f"{'srv CPU':>9}{'db CPU':>8}{'cli CPU':>9}"
    )
    print()
    print(
        f"Recordings API latency, {sizes.recordings:,} recordings / {sizes.meetings:,} meetings, "
        f"{os.cpu_count()} CPUs (CPU columns: ms per request)"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        for r in run.results:
            print(
                f"{r.backend:<11}{r.operation:<34}{len(r.latencies_ms):>5}{r.percentile(50):>9.2f}"
                f"{r.percentile(99):>9.2f}{r.mean:>9.2f}{r.per_request_ms(r.server_cpu_s):>9}"
                f"{r.per_request_ms(r.db_cpu_s):>8}{r.per_request_ms(r.client_cpu_s):>9}"
            )
        print(
            f"{run.backend:<11}server process CPU, whole run: {run.server_cpu_total_s:.2f} s; "
            f"seeding {run.seeded.seconds:.1f} s; backend total {run.seconds:.1f} s"
        )
        print("-" * len(header))
    print(f"Targets (p50): get one ≤ {TARGET_GET_P50_MS:g} ms, filtered list ≤ {TARGET_LIST_P50_MS:g} ms")
    for run in runs:
        by_name = {r.operation: r for r in run.results}
        get = by_name["get one"].percentile(50)
        listed = by_name["list status=UPLOADED"].percentile(50)
        print(
            f"  {run.backend:<11} get one p50 {get:.2f} ms ({'met' if get <= TARGET_GET_P50_MS else 'MISSED'}), "
            f"list status=UPLOADED p50 {listed:.2f} ms "
            f"({'met' if listed <= TARGET_LIST_P50_MS else 'MISSED'})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma list of sqlite, postgresql")
    parser.add_argument("--recordings", type=int, help="rows to seed (default 100,000; 10,000 with --quick)")
    parser.add_argument("--meetings", type=int, help="meetings the recordings spread over (default 1,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10,000 rows, fewer requests")
    parser.add_argument("--seed", type=int, default=20260302, help="random seed for rows and ids")
    parser.add_argument("--no-vacuum", action="store_true", help="PostgreSQL: skip VACUUM ANALYZE after seeding")
    args = parser.parse_args(argv)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    sizes = sizes_from(args)
    began = time.perf_counter()
    runs: list[BackendRun] = []
    failed = False
    for backend in backends:
        try:
            runs.append(run_backend(backend, sizes, args))
        except BenchError as error:
            failed = True
            print(f"[{backend}] FAILED: {error}", file=sys.stderr, flush=True)
    if runs:
        print_table(runs, sizes)
    print(f"\nTotal run time: {time.perf_counter() - began:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
