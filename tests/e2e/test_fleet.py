"""The fleet (issue 14) as it runs in production, on one machine: a real PostgreSQL, one `recordkit serve --role
api,media` and `recordkit worker` processes sharing a data dir and a bucket folder; bots joined over WebRTC; the
workers' recorders join the meetings through the media node as hidden recorders."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from recordkit.bot.client import join
from recordkit.bot.synthetic import EncodedLoopAudioTrack, EncodedLoopVideoTrack, SyntheticClock
from recordkit.clock import parse_iso8601
from tests.e2e.test_durable_work import column, duration_s, kill_9
from tests.helpers import CREDENTIALS_ENV
from tests.recorder.test_composite_e2e import download, ffprobe, until_status
from tests.recording.test_recording_ends import start
from tests.support.media import Setup
from tests.support.postgres import fresh_database
from tests.support.server import Served, recordkit_serve

# A small picture keeps ten recorders on two cores in real time; the fleet's work is the same at any size.
SMALL = {"video_config": {"width": 320, "height": 180}}


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    with fresh_database(pg_server) as url:
        yield url


@dataclass
class Fleet:
    api: Served
    workers: list[Served]
    setup: Setup

    def worker_of(self, owner_id: str | None) -> Served | None:
        pid = int(owner_id.split(":")[1]) if owner_id else None
        return next((worker for worker in self.workers if worker.pid == pid), None)


@asynccontextmanager
async def fleet(
    tmp_path: Path, pg_url: str, workers: int, max_recordings: int, *, split: bool = False
) -> AsyncIterator[Fleet]:
    """One `serve --role api,media` (or, `split`, a `--role media` and a `--role api` through which every call goes,
    signalling included) and `workers` workers."""
    data_dir, bucket = tmp_path / "data", tmp_path / "shared-bucket"
    bucket_args = ["--bucket-url", bucket.as_uri()]
    env = {**CREDENTIALS_ENV, "RECORDKIT_MAX_RECORDINGS": str(max_recordings), "RECORDKIT_DRAIN_TIMEOUT_S": "20"}
    with ExitStack() as processes:
        if split:
            processes.enter_context(recordkit_serve(data_dir, pg_url, env, args=["--role", "media"]))
        api = processes.enter_context(
            recordkit_serve(data_dir, pg_url, env, args=["--role", "api" if split else "api,media", *bucket_args])
        )
        started = [
            processes.enter_context(
                recordkit_serve(
                    data_dir, pg_url, env, command_name="worker", args=[*bucket_args, "--public-url", api.base_url]
                )
            )
            for _ in range(workers)
        ]
        setup = Setup(api.base_url)
        try:
            yield Fleet(api, started, setup)
        finally:
            setup.close()


async def bot(stack: AsyncExitStack, fleet: Fleet, app_id: str, meeting_id: str, name: str) -> None:
    """A participant sending a pre-encoded loop (VP8 640×360 and Opus, flash and beep each second): no CPU."""
    token = fleet.setup.participant(app_id, meeting_id, name)["token"]
    clock = SyntheticClock()
    tracks = {"audio": EncodedLoopAudioTrack(clock), "video": EncodedLoopVideoTrack(clock, label=name)}
    await stack.enter_async_context(join(fleet.api.base_url, meeting_id, token, **tracks))


async def metrics_text(served: Served) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{served.base_url}/metrics")).text


def still_spans(path: Path) -> list[tuple[float, float]]:
    """(media time, length) of every span of the file's picture without change: a filled gap shows the last
    picture throughout, while the bots' pictures change every frame."""
    spans, changed_at, previous = [], 0.0, None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            assert frame.time is not None
            luma = frame.to_ndarray(format="gray")[::4, ::4].astype(np.int16)
            if previous is None or np.abs(luma - previous).mean() > 0.5:
                spans.append((changed_at, frame.time - changed_at))
                changed_at = frame.time
            previous = luma
    return spans


def gap_after_s(spans: list[tuple[float, float]], media_s: float) -> float:
    """The longest still picture within a few seconds after `media_s`: the gap a worker's end left there."""
    return max((length for at, length in spans if media_s - 0.5 <= at <= media_s + 5), default=0.0)


async def test_ten_recordings_in_five_meetings_spread_over_two_workers(pg_url: str, tmp_path: Path) -> None:
    """Acceptance 1: every recording ends UPLOADED with a playable file served by the API node, and both workers
    recorded."""
    async with fleet(tmp_path, pg_url, workers=2, max_recordings=5) as running, AsyncExitStack() as bots:
        setup = running.setup
        app_id, _ = setup.meeting()
        meetings = [setup.meeting(app_id)[1] for _ in range(5)]
        for index, meeting_id in enumerate(meetings):
            await bot(bots, running, app_id, meeting_id, f"Bot {index}")
        rids = [
            await start(setup, app_id, meeting_id, allow_multiple_recordings=True, **SMALL)
            for meeting_id in meetings
            for _ in range(2)
        ]
        recording = [await until_status(setup, app_id, rid, {"RECORDING"}, timeout_s=30) for rid in rids]
        assert [r["status"] for r in recording] == ["RECORDING"] * 10, recording
        owners = [await column(running.api.data_dir, pg_url, "owner_id", rid) for rid in rids]
        await asyncio.sleep(3)
        for rid in rids:
            await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})
        done = [await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"}, timeout_s=60) for rid in rids]
        files = [
            await download(d["download_url"], tmp_path / f"{d['id']}.mp4") for d in done if d["status"] == "UPLOADED"
        ]
        hidden = setup.session_peers(app_id, meetings[0])
    assert [d["status"] for d in done] == ["UPLOADED"] * 10, done
    assert all(d["download_url"].startswith(running.api.base_url) for d in done), "links are the API node's"
    by_worker = {running.worker_of(owner).pid for owner in owners if running.worker_of(owner) is not None}  # type: ignore[union-attr]
    assert len(by_worker) == 2, f"recordings spread across both workers: {owners}"
    for path, d in zip(files, done, strict=True):
        streams = {stream["codec_type"] for stream in ffprobe(path)["streams"]}
        assert streams == {"video", "audio"}
        assert abs(duration_s(path) - d["recording_duration"]) <= 1.0
    assert [peer["display_name"] for peer in hidden] == ["Bot 0"], "the recorders are never listed as participants"
    print(f"owners: {sorted(owners)}")


async def test_a_killed_worker_s_recording_goes_on_on_the_other_one(pg_url: str, tmp_path: Path) -> None:
    """Acceptance 2: kill -9 of the worker holding a recording: still RECORDING throughout, continued elsewhere
    within 5 s; the file plays, its gap ≤ 5 s, its duration the wall clock's within 1 s. Then SIGTERM of the new
    holder: handed over with a gap ≤ 1 s."""
    async with fleet(tmp_path, pg_url, workers=3, max_recordings=1) as running, AsyncExitStack() as bots:
        setup = running.setup
        app_id, meeting_id = setup.meeting()
        await bot(bots, running, app_id, meeting_id, "Witness")
        rid = await start(setup, app_id, meeting_id, **SMALL)
        assert (await until_status(setup, app_id, rid, {"RECORDING"}, timeout_s=30))["status"] == "RECORDING"
        data_dir = running.api.data_dir

        async def follow(victim: Served, how: str) -> tuple[float, list[str]]:
            """Stop `victim` (`kill -9` or SIGTERM); how long until another worker holds the recording, and
            every status seen meanwhile."""
            first_owner = await column(data_dir, pg_url, "owner_id", rid)
            struck_at.append(time.time())
            struck = time.monotonic()
            if how == "kill":
                kill_9(victim)
            else:
                os.kill(victim.pid, signal.SIGTERM)
            seen = []
            while True:
                seen.append((await asyncio.to_thread(setup.data, "GET", f"/{app_id}/recordings/{rid}"))["status"])
                owner = await column(data_dir, pg_url, "owner_id", rid)
                holder = running.worker_of(owner)
                if owner != first_owner and holder is not None and holder is not victim:
                    return time.monotonic() - struck, seen
                assert time.monotonic() - struck < 15, f"nobody continued the recording: {seen[-5:]}"
                await asyncio.sleep(0.1)

        struck_at: list[float] = []
        await asyncio.sleep(3)
        holder = running.worker_of(await column(data_dir, pg_url, "owner_id", rid))
        assert holder is not None
        killed_after_s, seen_kill = await follow(holder, "kill")
        await asyncio.sleep(3)
        holder = running.worker_of(await column(data_dir, pg_url, "owner_id", rid))
        assert holder is not None
        drained_after_s, seen_term = await follow(holder, "term")
        await asyncio.sleep(3)
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})
        done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"}, timeout_s=60)
        assert done["status"] == "UPLOADED", done
        path = await download(done["download_url"], tmp_path / "taken-over.mp4")
    wall_s = (parse_iso8601(done["stopped_time"]) - parse_iso8601(done["started_time"])).total_seconds()
    assert set(seen_kill) | set(seen_term) == {"RECORDING"}, "the API never shows the recording leave RECORDING"
    assert killed_after_s <= 5, killed_after_s
    assert abs(duration_s(path) - wall_s) <= 1.0, (duration_s(path), wall_s)
    started = parse_iso8601(done["started_time"]).replace(tzinfo=UTC).timestamp()
    spans = still_spans(path)
    kill_gap_s, term_gap_s = (gap_after_s(spans, at - started) for at in struck_at)
    assert kill_gap_s <= 5.0 and term_gap_s <= 1.0, (kill_gap_s, term_gap_s)
    print(
        f"kill -9: continued after {killed_after_s:.2f} s, gap {kill_gap_s:.2f} s; SIGTERM: handed over after "
        f"{drained_after_s:.2f} s, gap {term_gap_s:.2f} s; file {duration_s(path):.2f} s for {wall_s:.2f} s of wall "
        f"clock; longest still picture anywhere {max(length for _, length in spans):.2f} s"
    )


async def test_recordings_beyond_the_workers_capacity_wait_invoked_and_start_when_it_frees(
    pg_url: str, tmp_path: Path
) -> None:
    """Acceptance 3: two workers of one recording each, three recordings: the third waits INVOKED (never refused)
    and starts when a recording stops; the wait shows in the worker's /metrics. The API and the media run in two
    processes: the bots' signalling goes through the API node."""
    async with fleet(tmp_path, pg_url, workers=2, max_recordings=1, split=True) as running, AsyncExitStack() as bots:
        setup = running.setup
        app_id, _ = setup.meeting()
        meetings = [setup.meeting(app_id)[1] for _ in range(3)]
        for index, meeting_id in enumerate(meetings):
            await bot(bots, running, app_id, meeting_id, f"Bot {index}")
        first, second = [await start(setup, app_id, meeting_id, **SMALL) for meeting_id in meetings[:2]]
        for rid in (first, second):
            assert (await until_status(setup, app_id, rid, {"RECORDING"}, timeout_s=30))["status"] == "RECORDING"
        waiting = await start(setup, app_id, meetings[2], **SMALL)
        await asyncio.sleep(3)
        still: dict[str, Any] = await asyncio.to_thread(setup.data, "GET", f"/{app_id}/recordings/{waiting}")
        freed_at = time.monotonic()
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{first}", json={"action": "stop"})
        started = await until_status(setup, app_id, waiting, {"RECORDING"}, timeout_s=15)
        started_after_s = time.monotonic() - freed_at
        holder = running.worker_of(await column(running.api.data_dir, pg_url, "owner_id", waiting))
        await asyncio.sleep(1)
        for rid in (second, waiting):
            await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})
        done = [await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"}) for rid in (first, second, waiting)]
        assert holder is not None
        exposed = await metrics_text(holder)
    assert still["status"] == "INVOKED", still
    assert started["status"] == "RECORDING" and started_after_s < 5, started_after_s
    assert [d["status"] for d in done] == ["UPLOADED"] * 3, done
    waits = [
        line for line in exposed.splitlines() if line.startswith('recordkit_job_queue_wait_seconds_sum{kind="record"}')
    ]
    assert waits and float(waits[0].split()[-1]) >= 3.0, exposed
    print(f"the waiting recording started {started_after_s:.2f} s after capacity freed; {waits[0]}")


async def test_signalling_forwarded_to_the_media_node_is_rate_limited_where_it_came_in(
    pg_url: str, tmp_path: Path
) -> None:
    """The API node limits a caller's signalling as it limits its other calls, also when it only forwards it; the
    media node here has no limit of its own, so every call past the limit would reach it otherwise."""
    per_minute = 10
    data_dir = tmp_path / "data"
    with ExitStack() as processes:
        processes.enter_context(recordkit_serve(data_dir, pg_url, CREDENTIALS_ENV, args=["--role", "media"]))
        api = processes.enter_context(
            recordkit_serve(
                data_dir,
                pg_url,
                {**CREDENTIALS_ENV, "RECORDKIT_RATE_LIMIT_PER_MINUTE": str(per_minute)},
                args=["--role", "api"],
            )
        )
        setup = Setup(api.base_url)
        try:
            app_id, meeting_id = setup.meeting()
            token = setup.participant(app_id, meeting_id, "Ada")["token"]
        finally:
            setup.close()
        slots = f"{api.base_url}/meet/{meeting_id}/peers/nobody/slots"
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
            answers = [await client.get(slots) for _ in range(per_minute + 1)]
    # The media node answers the forwarded calls (nobody of that name has joined), then the API node refuses.
    assert {answer.status_code for answer in answers[:per_minute]} == {404}, [a.text for a in answers[:per_minute]]
    assert answers[-1].status_code == 429, answers[-1].text
    assert int(answers[-1].headers["retry-after"]) >= 1
