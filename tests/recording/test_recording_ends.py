"""Every way a composite recording ends by itself, and a crash of the whole service (issue 5, acceptance 4)."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from datetime import UTC
from pathlib import Path
from typing import Any

import av
import pytest

from recordkit.bot.client import join
from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock, SyntheticVideoTrack
from recordkit.clock import parse_iso8601
from tests.helpers import CREDENTIALS_ENV
from tests.recorder.test_composite_e2e import download, ffprobe, until_status
from tests.support.media import Setup
from tests.support.server import recordkit_serve

ENV = {**CREDENTIALS_ENV, "RECORDKIT_EMPTY_MEETING_TIMEOUT_S": "3"}


async def bot(stack: AsyncExitStack, base_url: str, setup: Setup, app_id: str, meeting_id: str, name: str) -> Any:
    token = setup.participant(app_id, meeting_id, name)["token"]
    clock = SyntheticClock()
    tracks = {"audio": SyntheticAudioTrack(clock), "video": SyntheticVideoTrack(clock, label=name)}
    return await stack.enter_async_context(join(base_url, meeting_id, token, **tracks))


async def start(setup: Setup, app_id: str, meeting_id: str, **body: Any) -> str:
    data = await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings", json={"meeting_id": meeting_id, **body})
    return str(data["id"])


async def test_empty_meetings_and_leaving_end_recordings(tmp_path: Path) -> None:
    with recordkit_serve(tmp_path / "data", env=ENV) as served:
        setup = Setup(served.base_url)
        app_id, empty = setup.meeting(session_keep_alive_time_in_secs=0)
        _, left = setup.meeting(app_id, session_keep_alive_time_in_secs=0)
        empty_id = await start(setup, app_id, empty)

        async with AsyncExitStack() as leaving:
            await bot(leaving, served.base_url, setup, app_id, left, "Leaver")
            left_id = await start(setup, app_id, left)
            assert (await until_status(setup, app_id, left_id, {"RECORDING"}))["status"] == "RECORDING"
            await asyncio.sleep(2)
        left_at = time.monotonic()

        done = await until_status(setup, app_id, left_id, {"UPLOADED", "ERRORED"})
        assert done["status"] == "UPLOADED" and time.monotonic() - left_at < 10
        assert done["stop_reason"] == {"reason": "ALL_PEERS_LEFT", "caller": None}

        done = await until_status(setup, app_id, empty_id, {"UPLOADED", "ERRORED"}, timeout_s=30)
        assert done["status"] == "UPLOADED", done
        assert done["stop_reason"] == {"reason": "ALL_PEERS_LEFT", "caller": None}
        assert 2 <= done["recording_duration"] <= 6, "an empty canvas is still recorded until the timeout"
        setup.close()


@pytest.mark.waits  # 64 s at about 0.3 cores: one audio-only participant, so the composite's picture stands still
async def test_max_seconds_ends_a_recording_at_that_length(tmp_path: Path) -> None:
    with recordkit_serve(tmp_path / "data", env=ENV) as served:
        setup = Setup(served.base_url)
        app_id, capped = setup.meeting()
        token = setup.participant(app_id, capped, "Stayer")["token"]
        async with join(served.base_url, capped, token, audio=SyntheticAudioTrack(SyntheticClock())):
            capped_id = await start(setup, app_id, capped, max_seconds=60)
            done = await until_status(setup, app_id, capped_id, {"UPLOADED", "ERRORED"}, timeout_s=90)
        assert done["status"] == "UPLOADED", done
        assert done["stop_reason"] == {"reason": "API_CALL", "caller": None}
        captured = parse_iso8601(done["stopped_time"]) - parse_iso8601(done["started_time"])
        assert captured.total_seconds() == 60 and done["recording_duration"] == 60
        path = await download(done["download_url"], tmp_path / done["output_file_name"])
        assert abs(float(ffprobe(path)["format"]["duration"]) - 60) <= 0.5
        setup.close()


async def test_kill_9_mid_recording_then_restart_uploads_what_was_captured(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with recordkit_serve(data_dir, env=ENV) as first:
        setup = Setup(first.base_url)
        app_id, meeting_id = setup.meeting()
        async with AsyncExitStack() as stack:
            await bot(stack, first.base_url, setup, app_id, meeting_id, "Witness")
            rid = await start(setup, app_id, meeting_id)
            assert (await until_status(setup, app_id, rid, {"RECORDING"}))["status"] == "RECORDING"
            await asyncio.sleep(6)
            first.process.kill()
            first.process.wait()
            killed_at = time.time()
        setup.close()
    with recordkit_serve(data_dir, env=ENV) as second:
        setup = Setup(second.base_url)
        done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
        setup.close()
        assert done["status"] == "UPLOADED", done
        path = await download(done["download_url"], tmp_path / done["output_file_name"])
    assert done["stop_reason"] == {"reason": "INTERNAL_ERROR", "caller": None}
    duration_s = float(ffprobe(path)["format"]["duration"])
    started_s = parse_iso8601(done["started_time"]).replace(tzinfo=UTC).timestamp()
    recorded_until_s = killed_at - started_s
    assert duration_s >= recorded_until_s - 2, (duration_s, recorded_until_s)
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 25 * (recorded_until_s - 2), "and it decodes"
