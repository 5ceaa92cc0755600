"""Admission (issue 10, acceptance 4, first half): with `RECORDKIT_MAX_RECORDINGS=1` a second start waits in
INVOKED while the first records, and begins as soon as the first stops."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path

from tests.helpers import CREDENTIALS_ENV
from tests.recorder.test_composite_e2e import until_status
from tests.recording.test_recording_ends import bot, start
from tests.support.media import Setup
from tests.support.server import recordkit_serve


async def test_a_start_beyond_capacity_waits_invoked_and_begins_when_a_recording_stops(tmp_path: Path) -> None:
    env = {**CREDENTIALS_ENV, "RECORDKIT_MAX_RECORDINGS": "1"}
    with recordkit_serve(tmp_path / "data", env=env) as served:
        setup = Setup(served.base_url)
        async with AsyncExitStack() as stack:
            meetings = [setup.meeting() for _ in range(2)]
            for app_id, meeting_id in meetings:
                await bot(stack, served.base_url, setup, app_id, meeting_id, "Witness")
            (first_app, first_meeting), (second_app, second_meeting) = meetings
            first = await start(setup, first_app, first_meeting)
            assert (await until_status(setup, first_app, first, {"RECORDING"}))["status"] == "RECORDING"
            second = await start(setup, second_app, second_meeting)
            await asyncio.sleep(3)
            waiting = await asyncio.to_thread(setup.data, "GET", f"/{second_app}/recordings/{second}")
            assert waiting["status"] == "INVOKED", "accepted, and queued while the only slot is taken"
            await asyncio.to_thread(setup.data, "PUT", f"/{first_app}/recordings/{first}", json={"action": "stop"})
            stopped_at = time.monotonic()
            begun = await until_status(setup, second_app, second, {"RECORDING"}, timeout_s=10)
            began_after_s = time.monotonic() - stopped_at
            await asyncio.to_thread(setup.data, "PUT", f"/{second_app}/recordings/{second}", json={"action": "stop"})
        setup.close()
    assert begun["status"] == "RECORDING" and began_after_s < 2, began_after_s
    print(f"the queued recording was RECORDING {began_after_s:.2f} s after the first one's stop answered")
