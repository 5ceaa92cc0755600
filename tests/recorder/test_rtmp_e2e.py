"""RTMP out end to end (issue 13, acceptance 1): a bot in a real meeting, a real recorder streaming to a real
nginx-rtmp while it writes the file; the stream pulled back from nginx as a viewer would."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pytest

from recordkit.bot.marks import detect_beeps, detect_flashes, pair_marks
from tests.recorder.test_composite_e2e import api_row, bots, download, ffprobe, until_status
from tests.support.media import Setup, ThreadServer
from tests.support.rtmp_server import RtmpServer, rtmp_server
from tests.support.server import free_port

STREAM_KEY = "live-key-7f3a9c"  # must never reach a log


@pytest.fixture(scope="module")
def rtmp() -> Iterator[RtmpServer]:
    with rtmp_server() as server:
        yield server


@dataclass
class Pulled:
    """What a viewer got: pictures (320x180) and sound, each with its time in the stream."""

    codecs: list[str]
    times_s: list[float] = field(default_factory=list)
    frames: list[av.VideoFrame] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)
    audio_start_s: float | None = None


def pull(url: str, seconds: float, target: Path) -> Pulled:
    """Watch the live stream at `url` for `seconds` as a player would, and decode what came.

    The stream is copied to a file by an `ffmpeg` process and decoded afterwards: decoding 720p while it
    arrives would take the CPU the recorder (in this process) needs, and move the marks being measured.
    """
    subprocess.run(
        ["ffmpeg", "-v", "error", "-rw_timeout", "10000000", "-i", url, "-t", str(seconds), "-c", "copy",
         "-f", "flv", "-y", str(target)],
        check=True, capture_output=True, timeout=seconds + 30,
    )  # fmt: skip
    with av.open(str(target)) as container:
        pulled = Pulled(sorted(stream.codec_context.name for stream in container.streams))
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                pulled.times_s.append(float(frame.time))
                pulled.frames.append(frame.reformat(width=320, height=180))
            elif isinstance(frame, av.AudioFrame):
                if pulled.audio_start_s is None:
                    pulled.audio_start_s = float(frame.time)
                pulled.audio.append(frame.to_ndarray().mean(axis=0))
    return pulled


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line at any level, but the SQLite driver's debug echo of the SQL it runs (the URL is stored
    with the recording's configuration; the spec echoes a meeting's `live_streaming_config`)."""
    return "\n".join(record.getMessage() for record in caplog.records if not record.name.startswith("aiosqlite"))


async def back_at_the_server(rtmp: RtmpServer, published: int, since: float) -> float:
    """Seconds from `since` until a new publish has brought nginx its first few kilobytes of stream."""
    while time.monotonic() - since < 15:
        files = rtmp.flv_files()
        if len(files) > published and files[-1].stat().st_size > 4096:
            return time.monotonic() - since
        await asyncio.sleep(0.05)
    raise AssertionError("the stream did not come back within 15 s")


def lumas(pulled: Pulled) -> list[float]:
    return [float(np.asarray(frame.to_ndarray(format="gray")).mean()) for frame in pulled.frames]


async def test_stream_in_sync_black_while_paused_back_after_a_server_restart_and_file_without_gap(
    server: ThreadServer, setup: Setup, rtmp: RtmpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = rtmp.url(STREAM_KEY)
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    body = {"meeting_id": meeting_id, "rtmp_out_config": {"rtmp_url": url}}
    async with bots(server, setup, app_id, meeting_id, ["Streamer"]):
        rid = (await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings", json=body))["id"]
        assert (await until_status(setup, app_id, rid, {"RECORDING"}))["status"] == "RECORDING"

        # A viewer: H.264 + AAC, the bot's flashes and beeps together.
        live = await asyncio.to_thread(pull, url, 5.0, tmp_path / "live.flv")
        assert live.codecs == ["aac", "h264"]
        assert sorted(stream["codec_name"] for stream in ffprobe(tmp_path / "live.flv")["streams"]) == ["aac", "h264"]
        assert live.audio_start_s is not None
        # The copy starts wherever the stream was: a mark cut by its start would be dated at the cut.
        settled_s = max(live.times_s[0], live.audio_start_s) + 0.5
        flashes = [t for t in detect_flashes(live.frames, times_s=live.times_s) if t > settled_s]
        beeps = detect_beeps(np.concatenate(live.audio).astype(np.float64), 48_000, start_s=live.audio_start_s)
        beeps = [t for t in beeps if t > settled_s]
        report = pair_marks(flashes, beeps)
        print(f"pulled stream: flash → beep offsets {report.offsets_ms} ms")
        assert report.pairs >= 3, report
        assert abs(report.worst_ms or 0) <= 80, report

        # Paused: the stream goes on, black and silent.
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "pause"})
        await asyncio.sleep(0.5)  # the jitter delay: frames already captured before the pause still go out
        paused = await asyncio.to_thread(pull, url, 2.0, tmp_path / "paused.flv")
        assert len(paused.frames) >= 30 and max(lumas(paused)) < 20, "black pictures while paused"
        assert np.abs(np.concatenate(paused.audio)).max() < 0.01, "silence while paused"
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "resume"})
        await asyncio.sleep(1.5)

        # nginx goes away and comes back: the stream is back within 6 s — it reaches the server, which records
        # each publish to a file of its own (a viewer's player adds its own start-up time on top).
        published = len(rtmp.flv_files())
        restarted_at = time.monotonic()
        await asyncio.to_thread(rtmp.restart)
        back_after_s = await back_at_the_server(rtmp, published, restarted_at)
        print(f"stream back at the server {back_after_s:.2f} s after nginx's restart began")
        assert back_after_s <= 6.0, back_after_s
        back = await asyncio.to_thread(pull, url, 1.0, tmp_path / "back.flv")
        assert min(lumas(back)) > 40, "the meeting again, not the pause's black"
        await asyncio.sleep(1.0)
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})

    done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
    assert done["status"] == "UPLOADED", done
    path = await download(done["download_url"], tmp_path / done["output_file_name"])
    # No gap: frames follow each other all through, and the file lasts what was captured, pause excluded.
    row = await server.call(api_row(server, rid))
    captured_s = (row.stopped_time - row.started_time).total_seconds() - row.paused_total_ms / 1000
    assert 0 <= float(ffprobe(path)["format"]["duration"]) - captured_s <= 0.1
    with av.open(str(path)) as container:
        times = [float(frame.time) for frame in container.decode(video=0)]
    # A recorder that falls behind (a loaded machine) renders every other or fourth frame for a while: steps of
    # up to 0.133 s, never a hole.
    assert np.diff(times).max() < 0.15, "not at the pause, not at the server's restart"
    assert len(rtmp.flv_files()) >= 2, "nginx saw the stream published again after its restart"
    assert STREAM_KEY not in logged(caplog), "the stream key never reaches a log"
    assert "connecting again in 5 s" in caplog.text


async def test_an_rtmp_url_nobody_listens_on_leaves_the_recording_whole(
    server: ThreadServer, setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"rtmp://127.0.0.1:{free_port()}/live/{STREAM_KEY}"
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    body = {"meeting_id": meeting_id, "rtmp_out_config": {"rtmp_url": url}}
    async with bots(server, setup, app_id, meeting_id, ["Alone"]):
        rid = (await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings", json=body))["id"]
        assert (await until_status(setup, app_id, rid, {"RECORDING"}))["status"] == "RECORDING"
        await asyncio.sleep(4)
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})
    done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
    assert done["status"] == "UPLOADED", done
    path = await download(done["download_url"], tmp_path / done["output_file_name"])
    assert float(ffprobe(path)["format"]["duration"]) >= 3.5
    assert "ConnectionRefusedError" in caplog.text
    assert STREAM_KEY not in logged(caplog)
