"""A recorder whose spool file stops taking writes (ENOSPC) mid-recording (issue 10, item 5 and acceptance 5).

The fault is injected where FFmpeg's muxer writes the spool file: from the chosen moment on, every write of
every recording in the test's server fails as it would on a full disk. What was written before stays, and
the recording must move on to UPLOADED with it, in time, without a 500 for a stop that races the failure.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import av
import pytest

from recordkit.bot.client import join
from recordkit.bot.synthetic import EncodedLoopAudioTrack, EncodedLoopVideoTrack, SyntheticClock
from recordkit.recorder.outputs.file import FileOutput
from tests.recorder.test_composite_e2e import download, ffprobe, until_status
from tests.support.media import Setup, ThreadServer


class FullDisk:
    """Makes every spool write fail with ENOSPC once `fill()` was called."""

    def __init__(self) -> None:
        self.full_since: float | None = None
        self.refused_writes = 0

    def fill(self) -> None:
        self.full_since = time.monotonic()


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[FullDisk]:
    state = FullDisk()
    mux = FileOutput._mux

    def mux_unless_full(self: FileOutput, packet: av.Packet) -> None:
        if state.full_since is not None:
            state.refused_writes += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        mux(self, packet)

    monkeypatch.setattr(FileOutput, "_mux", mux_unless_full)
    yield state


@asynccontextmanager
async def two_bots(server: ThreadServer, setup: Setup, app_id: str, meeting_id: str) -> AsyncIterator[None]:

    clock = SyntheticClock()
    async with (
        join(
            server.base_url,
            meeting_id,
            setup.participant(app_id, meeting_id, "Ada")["token"],
            audio=EncodedLoopAudioTrack(clock),
            video=EncodedLoopVideoTrack(clock, label="Ada"),
        ),
        join(
            server.base_url,
            meeting_id,
            setup.participant(app_id, meeting_id, "Grace")["token"],
            audio=EncodedLoopAudioTrack(clock, beep_frequency_hz=1200),
            video=EncodedLoopVideoTrack(clock, label="Grace"),
        ),
    ):
        yield


async def start_recording(setup: Setup, app_id: str, meeting_id: str) -> str:
    data = await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings", json={"meeting_id": meeting_id})
    recording = await until_status(setup, app_id, data["id"], {"RECORDING"})
    assert recording["status"] == "RECORDING", recording
    return str(data["id"])


def seconds_of_video(path: Path) -> float:
    with av.open(str(path)) as container:
        return max(float(frame.time) for frame in container.decode(video=0))


async def test_a_full_disk_mid_recording_ends_uploaded_with_what_was_written(
    server: ThreadServer, setup: Setup, disk: FullDisk, tmp_path: Path
) -> None:
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    async with two_bots(server, setup, app_id, meeting_id):
        rid = await start_recording(setup, app_id, meeting_id)
        await asyncio.sleep(4)
        disk.fill()
        uploading = await until_status(setup, app_id, rid, {"UPLOADING", "UPLOADED", "ERRORED"}, timeout_s=10)
        reached_s = time.monotonic() - (disk.full_since or 0)
    assert uploading["status"] in {"UPLOADING", "UPLOADED"}, uploading
    assert reached_s < 5, f"UPLOADING {reached_s:.1f} s after the disk filled"
    done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
    assert done["status"] == "UPLOADED", done
    assert done["stop_reason"]["reason"] == "INTERNAL_ERROR", done
    assert disk.refused_writes > 0

    path = await download(done["download_url"], tmp_path / done["output_file_name"])
    probe = ffprobe(path)
    assert {stream["codec_type"] for stream in probe["streams"]} == {"video", "audio"}
    # Fragments reach the file every second: what was encoded up to the last whole second before the failure.
    assert 2.5 <= seconds_of_video(path) <= 5.5


@pytest.mark.parametrize("stop_after_s", [-0.03, 0.0, 0.03])
async def test_a_stop_racing_the_failure_answers_200_or_409(
    server: ThreadServer, setup: Setup, disk: FullDisk, tmp_path: Path, stop_after_s: float
) -> None:
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    async with two_bots(server, setup, app_id, meeting_id):
        rid = await start_recording(setup, app_id, meeting_id)
        await asyncio.sleep(3)

        async def stop() -> Any:
            await asyncio.sleep(max(0.0, stop_after_s))
            return await asyncio.to_thread(
                setup.http.request, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"}
            )

        async def fill() -> None:
            await asyncio.sleep(max(0.0, -stop_after_s))
            disk.fill()

        response, _ = await asyncio.gather(stop(), fill())
    assert response.status_code in (200, 409), response.text
    done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
    assert done["status"] == "UPLOADED", done
    path = await download(done["download_url"], tmp_path / done["output_file_name"])
    assert seconds_of_video(path) >= 1.5
