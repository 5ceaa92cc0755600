"""Interactive recordings end to end (recordings.md §9.5; issue 13, acceptance 2): a bot-driven recording with
`interactive_config` downloads as a `.tar` of an HLS playlist and segments that ffprobe reads as H.264 + AAC +
timed ID3, whose ID3 times are the meeting's wall clock; and a `kill -9` mid-recording still ends in such a tar,
every segment of which plays."""

from __future__ import annotations

import asyncio
import statistics
import tarfile
import time
from contextlib import AsyncExitStack
from datetime import UTC
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from recordkit.bot.client import join
from recordkit.bot.marks import detect_flashes
from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock, SyntheticVideoTrack
from recordkit.clock import parse_iso8601
from recordkit.recorder.manifest import wall_time_iso
from recordkit.recorder.outputs.hls import TS_OFFSET_S
from recordkit.recorder.spool import spool_dir
from tests.e2e.test_durable_work import ENV, kill_9
from tests.recorder.test_composite_e2e import until_status
from tests.recorder.test_hls import ffprobe, listed, plays, tags
from tests.recording.test_recording_ends import start
from tests.support.media import Setup, ThreadServer
from tests.support.server import recordkit_serve

INTERACTIVE = {"interactive_config": {"type": "ID3"}}


async def bot(stack: AsyncExitStack, base_url: str, setup: Setup, app_id: str, meeting_id: str) -> SyntheticClock:
    """A bot in the meeting, flashing at each whole second of its clock; the clock, to tell when it flashed."""
    token = setup.participant(app_id, meeting_id, "Timekeeper")["token"]
    clock = SyntheticClock()
    tracks = {"audio": SyntheticAudioTrack(clock), "video": SyntheticVideoTrack(clock, label="Timekeeper")}
    await stack.enter_async_context(join(base_url, meeting_id, token, **tracks))
    return clock


async def download_tar(url: str, tmp_path: Path) -> Path:
    """The recording's tar from its `download_url`, unpacked: the folder it was unpacked into."""
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-tar"
    tar_path = tmp_path / "recording.tar"
    await asyncio.to_thread(tar_path.write_bytes, response.content)
    unpacked = tmp_path / "unpacked"
    with tarfile.open(tar_path) as tar:
        assert tar.getnames()[0] == "index.m3u8"
        tar.extractall(unpacked, filter="data")
    return unpacked


def started_s(recording: dict[str, Any]) -> float:
    return parse_iso8601(recording["started_time"]).replace(tzinfo=UTC).timestamp()


def check_hls(unpacked: Path, recording: dict[str, Any]) -> list[str]:
    """The tar holds a VOD playlist of H.264 + AAC + timed ID3 segments, each starting with an ID3 tag (and a
    `#EXT-X-PROGRAM-DATE-TIME`) holding the recording's wall-clock time there, and playing whole; the segments'
    names."""
    text = (unpacked / "index.m3u8").read_text()
    segments = listed(text)
    assert sorted(path.name for path in unpacked.iterdir()) == ["index.m3u8", *segments]
    assert segments == [f"segment_{index:05d}.ts" for index in range(len(segments))]
    assert "#EXT-X-PLAYLIST-TYPE:VOD\n" in text and text.endswith("#EXT-X-ENDLIST\n")
    walls_s = []
    for name in segments:
        probe = ffprobe(unpacked / name)
        assert [(s["codec_type"], s["codec_name"]) for s in probe["streams"]] == [
            ("video", "h264"), ("audio", "aac"), ("data", "timed_id3")
        ]  # fmt: skip
        # Where the segment starts in the recording's media time (`started_time` is its time 0; a frame the
        # recorder dropped under load can move a keyframe, and the cut with it, off the 10 s mark).
        ((tag_s, wall_s),) = tags(unpacked / name)
        assert wall_s == pytest.approx(started_s(recording) + tag_s - TS_OFFSET_S, abs=0.1), name
        walls_s.append(wall_s)
        frames, errors = plays(unpacked / name)
        assert errors == "" and frames == video_packets(unpacked / name), name
    dates = [line.split(":", 1)[1] for line in text.splitlines() if line.startswith("#EXT-X-PROGRAM-DATE-TIME:")]
    assert dates == [wall_time_iso(wall_s) for wall_s in walls_s]
    return segments


def video_packets(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def flash_wall_times_s(unpacked: Path, segments: list[str]) -> list[float]:
    """When the bot's flashes were shown, on the wall clock the segments' ID3 tags give."""
    flashes: list[float] = []
    for name in segments:
        ((tag_s, wall_s),) = tags(unpacked / name)
        assert wall_s is not None
        with av.open(str(unpacked / name)) as container:
            frames = list(container.decode(video=0))
        flashes += detect_flashes(frames, times_s=[wall_s + float(frame.time) - tag_s for frame in frames])
    return flashes


async def test_interactive_recording_is_a_tar_of_hls_on_the_wall_clock(
    server: ThreadServer, setup: Setup, tmp_path: Path
) -> None:
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    async with AsyncExitStack() as stack:
        clock = await bot(stack, server.base_url, setup, app_id, meeting_id)
        rid = await start(setup, app_id, meeting_id, **INTERACTIVE)
        assert (await until_status(setup, app_id, rid, {"RECORDING"}))["status"] == "RECORDING"
        await asyncio.sleep(13)
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})
    done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
    assert done["status"] == "UPLOADED", done
    assert done["output_file_name"].endswith(".tar")
    unpacked = await download_tar(done["download_url"], tmp_path)
    segments = check_hls(unpacked, done)
    assert len(segments) == 2

    # The strongest check of the wall clock: the bot flashes at each whole second of its own clock (the time it
    # sends the frame); the tags place the flashes there, to within 0.1 s. A frame that reaches the recorder late
    # on a loaded machine is shown late, whatever the tags say: the median is what the tags are judged by.
    flashes = flash_wall_times_s(unpacked, segments)
    assert len(flashes) >= 10, flashes
    late_s = sorted(at - clock.to_unix_s(round(at - clock.start_unix_s)) for at in flashes)
    assert abs(statistics.median(late_s)) <= 0.1, late_s
    print(f"flashes placed by the ID3 wall clock {late_s[0] * 1000:+.0f} to {late_s[-1] * 1000:+.0f} ms from sent")


async def test_kill_9_mid_recording_leaves_a_tar_whose_segments_all_play(tmp_path: Path) -> None:
    """`recordkit serve` killed 23 s into an interactive recording; restarted, it packages the complete segments
    the killed recorder left into the recording's tar, and uploads it."""
    data_dir = tmp_path / "data"
    with recordkit_serve(data_dir, env=ENV) as first:
        setup = Setup(first.base_url)
        app_id, meeting_id = setup.meeting()
        async with AsyncExitStack() as stack:
            await bot(stack, first.base_url, setup, app_id, meeting_id)
            rid = await start(setup, app_id, meeting_id, **INTERACTIVE)
            recording = await until_status(setup, app_id, rid, {"RECORDING"})
            assert recording["status"] == "RECORDING"
            await asyncio.sleep(max(0.0, started_s(recording) + 23 - time.time()))
            kill_9(first)
        setup.close()

    with recordkit_serve(data_dir, env=ENV) as second:
        setup = Setup(second.base_url)
        done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"}, timeout_s=30)
        setup.close()
        assert done["status"] == "UPLOADED", done
        link = second.base_url + done["download_url"][done["download_url"].index("/files/") :]
        unpacked = await download_tar(link, tmp_path)
    assert done["stop_reason"] == {"reason": "INTERNAL_ERROR", "caller": None}
    assert done["file_size"] == (tmp_path / "recording.tar").stat().st_size
    segments = check_hls(unpacked, done)
    assert len(segments) >= 2, "the segments completed before the kill (not the one it cut short) all play"
    assert not (spool_dir(data_dir, rid) / "hls").exists(), "the segments are in the tar, not left in the spool"
