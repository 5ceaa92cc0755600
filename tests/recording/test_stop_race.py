"""A stop that comes right after the start, before the recorder is up, leaves no recorder running."""

from __future__ import annotations

import asyncio
import time

from recordkit.bot.client import join
from recordkit.bot.synthetic import EncodedLoopAudioTrack, SyntheticClock
from tests.support.media import Setup, ThreadServer

ROUNDS = 12


async def start_then_stop_at_once(setup: Setup, app_id: str, path: str, body: dict[str, object]) -> list[str]:
    """Start and stop `ROUNDS` recordings, each stop sent as soon as its start answered; their final statuses."""
    statuses = []
    for _ in range(ROUNDS):
        started = await asyncio.to_thread(setup.data, "POST", f"/{app_id}/{path}", json=body)
        rid = started["recording"]["id"] if "recording" in started else started["id"]
        stopped = await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})
        statuses.append(stopped["status"])
    return statuses


async def until_no_recorder_runs(server: ThreadServer, timeout_s: float = 10) -> int:
    """How many recorders still run once none does, or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        running = len(server.services.recorders)
        if not running or time.monotonic() > deadline:
            return running
        await asyncio.sleep(0.05)


async def test_composite_recordings_stopped_at_once_leave_no_recorder(server: ThreadServer) -> None:
    setup = Setup(server.base_url)
    app_id, meeting_id = setup.meeting()
    statuses = await start_then_stop_at_once(setup, app_id, "recordings", {"meeting_id": meeting_id})
    setup.close()
    # Stopped before its first frame a recording ends ERRORED (§7.2); after it, it is uploaded.
    assert set(statuses) <= {"ERRORED", "UPLOADING"}, statuses
    # Without the fix, recorders whose stop came before they were registered kept recording the empty meeting.
    assert await until_no_recorder_runs(server) == 0


async def test_track_recordings_stopped_at_once_leave_no_recorder(server: ThreadServer) -> None:
    setup = Setup(server.base_url)
    app_id, meeting_id = setup.meeting()
    token = setup.participant(app_id, meeting_id, "Ada")["token"]
    audio = EncodedLoopAudioTrack(SyntheticClock())
    async with join(server.base_url, meeting_id, token, audio=audio):
        body = {"meeting_id": meeting_id, "layers": {"voices": {"file_name_prefix": "v", "media_kind": "audio"}}}
        statuses = await start_then_stop_at_once(setup, app_id, "recordings/track", body)
        assert set(statuses) <= {"ERRORED", "UPLOADING"}, statuses
        assert await until_no_recorder_runs(server) == 0
    setup.close()
