"""A recorder that fails ends its recording ERRORED, and no recorder is left behind (recordings.md §7.4)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recordkit.bot.client import join
from recordkit.bot.synthetic import EncodedLoopAudioTrack, SyntheticClock
from tests.recording.test_stop_race import until_no_recorder_runs
from tests.support.media import Setup, ThreadServer, serve_in_thread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadServer]:
    with serve_in_thread(tmp_path / "data") as served:
        # A file where the spool folder should be: every recorder fails to create its folder (a full or
        # read-only disk fails the same way).
        (tmp_path / "data" / "spool").write_bytes(b"")
        yield served


async def until_final(setup: Setup, app_id: str, rid: str, timeout_s: float = 10) -> dict[str, Any]:
    for _ in range(int(timeout_s / 0.05)):
        data: dict[str, Any] = await asyncio.to_thread(setup.data, "GET", f"/{app_id}/recordings/{rid}")
        if data["status"] in ("UPLOADED", "ERRORED"):
            return data
        await asyncio.sleep(0.05)
    raise AssertionError(f"recording {rid} still {data['status']}")


async def test_a_composite_recorder_that_fails_ends_its_recording_errored(server: ThreadServer) -> None:
    setup = Setup(server.base_url)
    app_id, meeting_id = setup.meeting()
    started = await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings", json={"meeting_id": meeting_id})
    done = await until_final(setup, app_id, started["id"])
    setup.close()
    assert done["status"] == "ERRORED" and done["download_url"] is None, done
    assert await until_no_recorder_runs(server) == 0


async def test_a_track_recorder_that_fails_ends_its_recording_errored(server: ThreadServer) -> None:
    setup = Setup(server.base_url)
    app_id, meeting_id = setup.meeting()
    token = setup.participant(app_id, meeting_id, "Ada")["token"]
    async with join(server.base_url, meeting_id, token, audio=EncodedLoopAudioTrack(SyntheticClock())):
        body = {"meeting_id": meeting_id, "layers": {"voices": {"file_name_prefix": "v", "media_kind": "audio"}}}
        started = await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings/track", json=body)
        done = await until_final(setup, app_id, started["recording"]["id"])
        assert done["status"] == "ERRORED" and done["download_url"] is None, done
        assert await until_no_recorder_runs(server) == 0
    setup.close()
