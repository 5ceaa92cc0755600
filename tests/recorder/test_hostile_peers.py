"""Hostile publishers against a real `recordkit serve` (issue 10, acceptance 1 and 2).

The server runs as its own process so its memory is its own; the peers are real aiortc connections in this
process. A hostile peer here is an honest loop of VP8 whose sender reports or key frame headers are forged on
the way out, the way a modified client would send them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from aiortc import RTCRtpSender
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from recordkit.bot.client import join
from recordkit.bot.marks import Region, detect_flashes
from recordkit.bot.synthetic import EncodedLoopAudioTrack, EncodedLoopVideoTrack, SyntheticClock
from tests.helpers import CREDENTIALS_ENV
from tests.recorder.test_composite_e2e import until_status
from tests.support.media import Setup
from tests.support.server import Served, recordkit_serve

RTP_WRAP = 1 << 32
VIDEO_CLOCK_RATE = 90_000


class ForgedReportsVideo(EncodedLoopVideoTrack):
    """The synthetic video loop; its sender's reports pair each RTP timestamp with a shifted one."""

    def __init__(self, clock: SyntheticClock, label: str, rtp_shift: int) -> None:
        super().__init__(clock, label=label)
        self.rtp_shift = rtp_shift


class OversizedKeyframeVideo(EncodedLoopVideoTrack):
    """The synthetic video loop whose key frame header claims 16383×16383 pixels."""

    def __init__(self, clock: SyntheticClock, label: str) -> None:
        super().__init__(clock, label=label)
        keyframe = bytearray(self.payloads[0])
        keyframe[6:10] = (16383).to_bytes(2, "little") * 2
        self.payloads[0] = bytes(keyframe)


@pytest.fixture
def forged_sender_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Senders of `ForgedReportsVideo` tracks shift the RTP timestamp of every sender report they send."""
    send_rtcp = RTCRtpSender._send_rtcp

    async def forging(self: RTCRtpSender, packets: list[Any]) -> None:
        shift = getattr(self.track, "rtp_shift", 0)
        for packet in packets:
            if shift and isinstance(packet, RtcpSrPacket) and packet.sender_info.ntp_timestamp:
                info = packet.sender_info
                packet.sender_info = RtcpSenderInfo(
                    info.ntp_timestamp, (info.rtp_timestamp + shift) % RTP_WRAP, info.packet_count, info.octet_count
                )
        await send_rtcp(self, packets)

    monkeypatch.setattr(RTCRtpSender, "_send_rtcp", forging)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    with recordkit_serve(data_dir, env=CREDENTIALS_ENV) as server:
        yield server


@pytest.fixture(scope="module")
def setup(served: Served) -> Iterator[Setup]:
    rest = Setup(served.base_url)
    yield rest
    rest.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class MemoryWatch:
    """The process's resident memory, sampled every 100 ms while the watch runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline_mb = rss_mb(pid)
        self.peak_mb = self.baseline_mb
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, rss_mb(self.pid))
            await asyncio.sleep(0.1)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[MemoryWatch]:
        self._task = asyncio.create_task(self._sample())
        try:
            yield self
        finally:
            self._task.cancel()

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.baseline_mb


@asynccontextmanager
async def publishers(
    served: Served, setup: Setup, app_id: str, meeting_id: str, tracks: list[Any]
) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for index, video in enumerate(tracks):
            token = setup.participant(app_id, meeting_id, f"p{index}")["token"]
            audio = EncodedLoopAudioTrack(video.clock, beep_frequency_hz=1000 + 200 * index)
            await stack.enter_async_context(join(served.base_url, meeting_id, token, audio=audio, video=video))
        yield


async def record(setup: Setup, app_id: str, meeting_id: str, seconds: float, during: Any = None) -> dict[str, Any]:
    started = await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings", json={"meeting_id": meeting_id})
    recording = await until_status(setup, app_id, started["id"], {"RECORDING"})
    assert recording["status"] == "RECORDING", recording
    if during is not None:
        await during(started["id"])
    else:
        await asyncio.sleep(seconds)
    await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{started['id']}", json={"action": "stop"})
    done = await until_status(setup, app_id, started["id"], {"UPLOADED", "ERRORED"}, timeout_s=30)
    assert done["status"] == "UPLOADED", done
    return done


async def decode(url: str, target: Path) -> tuple[list[av.VideoFrame], list[float]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    return await asyncio.to_thread(decode_file, response.content, target)


def decode_file(content: bytes, target: Path) -> tuple[list[av.VideoFrame], list[float]]:
    target.write_bytes(content)
    frames, times = [], []
    with av.open(str(target)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.reformat(width=320, height=180))
            times.append(float(frame.time))
    return frames, times


async def test_forged_reports_and_oversized_key_frames_cost_no_memory_and_spare_the_honest_picture(
    served: Served, setup: Setup, forged_sender_reports: None, tmp_path: Path
) -> None:
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    clock = SyntheticClock()
    honest = EncodedLoopVideoTrack(clock, label="Ada")
    hostile = [
        ForgedReportsVideo(clock, "Half-wrap", rtp_shift=1 << 31),  # every frame dated ~6.6 h away
        ForgedReportsVideo(clock, "Hour-ahead", rtp_shift=-3600 * VIDEO_CLOCK_RATE),  # frames an hour ahead
        OversizedKeyframeVideo(clock, "Huge"),
    ]
    async with publishers(served, setup, app_id, meeting_id, [honest, *hostile]):
        await asyncio.sleep(2)  # every sender has sent its first (forged) reports
        async with MemoryWatch(served.pid).running() as memory:
            done = await record(setup, app_id, meeting_id, seconds=12)
    assert memory.growth_mb < 150, f"the server grew {memory.growth_mb:.0f} MB while recording"
    assert "refusing frames of a video/VP8 track before decoding: it declares 16383x16383" in served.log()

    frames, times = await decode(done["download_url"], tmp_path / "hostile.mp4")
    # Ada joined first: the top-left tile of the 2×2 grid. Her loop flashes once a second.
    flashes = detect_flashes(frames, times_s=times, region=Region(0.0, 0.0, 0.5, 0.5))
    assert len(flashes) >= 9, f"the honest participant's picture is in the recording: flashes at {flashes}"


@pytest.mark.waits  # 73 s at 0.29 cores (the recorder is paused)
async def test_a_minute_of_pause_grows_the_server_by_less_than_20_mb(
    served: Served, setup: Setup, tmp_path: Path
) -> None:
    """Takes a little over a minute: the pause is the acceptance's own length."""
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    clock = SyntheticClock()
    videos = [EncodedLoopVideoTrack(clock, label="Ada"), EncodedLoopVideoTrack(clock, label="Grace")]
    pause_memory: list[MemoryWatch] = []

    async def pause_for_a_minute(rid: str) -> None:
        await asyncio.sleep(3)
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "pause"})
        await asyncio.sleep(1)  # what was queued before the pause is rendered and gone
        async with MemoryWatch(served.pid).running() as memory:
            await asyncio.sleep(60)
        pause_memory.append(memory)
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "resume"})
        await asyncio.sleep(3)

    async with publishers(served, setup, app_id, meeting_id, videos):
        done = await record(setup, app_id, meeting_id, seconds=0, during=pause_for_a_minute)
    (memory,) = pause_memory
    assert memory.growth_mb < 20, f"the server grew {memory.growth_mb:.1f} MB during a 60 s pause"

    frames, times = await decode(done["download_url"], tmp_path / "paused.mp4")
    assert 6 <= times[-1] <= 9, "the file holds the 7 s recorded around the pause, not the pause"
    flashes = detect_flashes(frames, times_s=times, region=Region(0.0, 0.25, 0.5, 0.5))
    assert [t for t in flashes if t > 4.5], f"the picture moves again after the resume: flashes at {flashes}"
