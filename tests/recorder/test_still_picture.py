"""A picture that does not change is not encoded again (issue 15, item 3): an audio-only meeting's composite
holds one frame a second, each a keyframe, and still plays for as long as it was recorded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import numpy as np

from recordkit.bot.client import join
from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock
from tests.recorder.test_composite_e2e import api_row, download, ffprobe, until_status
from tests.support.media import Setup, ThreadServer


async def test_an_audio_only_meeting_writes_a_frame_a_second_and_all_its_sound(
    server: ThreadServer, setup: Setup, tmp_path: Path
) -> None:
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    token = setup.participant(app_id, meeting_id, "Voice Only")["token"]
    async with join(server.base_url, meeting_id, token, audio=SyntheticAudioTrack(SyntheticClock())):
        rid = (await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings", json={"meeting_id": meeting_id}))[
            "id"
        ]
        assert (await until_status(setup, app_id, rid, {"RECORDING"}))["status"] == "RECORDING"
        started = time.monotonic()
        await asyncio.sleep(5)
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})
        recorded_s = time.monotonic() - started
    done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
    assert done["status"] == "UPLOADED", done
    path = await download(done["download_url"], tmp_path / done["output_file_name"])
    row = await server.call(api_row(server, rid))
    captured_s = (row.stopped_time - row.started_time).total_seconds()
    assert 0 <= float(ffprobe(path)["format"]["duration"]) - captured_s <= 0.1
    with av.open(str(path)) as container:
        frames = [(float(frame.time), frame.key_frame) for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio_s = sum(frame.samples for frame in container.decode(audio=0)) / 48_000
    # The speaker outline comes and goes with the bot's beeps: a few frames more than one a second.
    assert len(frames) < 4 * recorded_s, f"{len(frames)} frames for {recorded_s:.1f} s of a still picture"
    first_of_second: dict[int, bool] = {}
    for at_s, key in frames:
        first_of_second.setdefault(int(at_s), key)
    assert set(first_of_second) >= set(range(int(captured_s))), "a frame in every second"
    assert all(first_of_second.values()), "each second starts with a keyframe"
    assert frames[-1][0] >= captured_s - 0.1, "the last frame is at the stop"
    assert abs(audio_s - captured_s) <= 0.1, "all the sound"
    assert np.diff([at_s for at_s, _ in frames]).max() <= 1.0 + 1e-6
