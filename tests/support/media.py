"""Media test support: recordkit served from a thread on loopback, meetings set up over HTTP, and
generated tracks (cheap tones, counters, and pre-encoded VP8/Opus packets that cost no encoding).

No pytest imports here; fixtures and the bench wrap these.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fractions
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import uvicorn
from aiortc import MediaStreamTrack

from recordkit.app import create_app
from recordkit.config import MediaSettings, build_settings
from recordkit.db.migrate import upgrade
from tests.helpers import API_TOKEN, BASE, CREDENTIALS_ENV
from tests.support.server import free_port

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48_000)


@dataclass
class ThreadServer:
    """recordkit on 127.0.0.1 in a thread of this process (so tests can look inside it)."""

    base_url: str
    app: Any
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def services(self) -> Any:
        return self.app.state.services

    async def call(self, work: Any, timeout_s: float = 20) -> Any:
        """Run a coroutine on the server's event loop; the caller's loop keeps running meanwhile."""
        assert self.server_loop is not None
        future = asyncio.run_coroutine_threadsafe(work, self.server_loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)

    server_loop: asyncio.AbstractEventLoop | None = None


@contextlib.contextmanager
def serve_in_thread(
    data_dir: Path, media: MediaSettings | None = None, environ: Mapping[str, str] | None = None
) -> Iterator[ThreadServer]:
    """Migrate a SQLite database in `data_dir`, serve recordkit on a free port, stop it afterwards; `environ`
    adds RECORDKIT_* settings."""
    port = free_port()
    env = {**CREDENTIALS_ENV, **(environ or {})}
    settings, _ = build_settings(data_dir, None, f"http://127.0.0.1:{port}", environ=env)
    if media is not None:
        settings = dataclasses.replace(settings, media=media)
    upgrade(settings.database_url)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    served = ThreadServer(f"http://127.0.0.1:{port}", app, server, threading.Thread())

    def run() -> None:
        loop = asyncio.new_event_loop()
        served.server_loop = loop
        loop.run_until_complete(server.serve())
        loop.close()

    served.thread = threading.Thread(target=run, name="recordkit-server", daemon=True)
    served.thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not served.thread.is_alive():
            raise RuntimeError("recordkit did not start")
        time.sleep(0.02)
    try:
        yield served
    finally:
        server.should_exit = True
        served.thread.join(20)


class Setup:
    """Apps, meetings and participants over the REST API, synchronously."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url + BASE, headers={"Authorization": f"Bearer {API_TOKEN}"})
        self.base_url = base_url

    def data(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == status, response.text
        return response.json()["data"]

    def meeting(self, app_id: str | None = None, **fields: Any) -> tuple[str, str]:
        """A new meeting (in a new app unless given); returns (app id, meeting id)."""
        app_id = app_id or self.data("POST", "/apps", 201, json={"name": "Media"})["app"]["id"]
        meeting = self.data("POST", f"/{app_id}/meetings", 201, json={"title": "Media test", **fields})
        return app_id, meeting["id"]

    def participant(self, app_id: str, meeting_id: str, name: str, preset: str = "group_call_host") -> dict[str, Any]:
        body = {"custom_participant_id": f"user-{name}", "preset_name": preset, "name": name}
        return self.data("POST", f"/{app_id}/meetings/{meeting_id}/participants", 201, json=body)

    def session_peers(self, app_id: str, meeting_id: str) -> list[dict[str, Any]]:
        """Every session participant row of the meeting, oldest session first."""
        sessions = self.data("GET", f"/{app_id}/sessions", params={"associated_id": meeting_id, "sort_order": "ASC"})
        rows = []
        for session in sessions["sessions"]:
            rows += self.data("GET", f"/{app_id}/sessions/{session['id']}/participants")["participants"]
        return rows

    def sessions(self, app_id: str, meeting_id: str) -> list[dict[str, Any]]:
        return self.data("GET", f"/{app_id}/sessions", params={"associated_id": meeting_id})["sessions"]

    def close(self) -> None:
        self.http.close()


class PacedTrack(MediaStreamTrack):
    """Frames at a fixed rate on the wall clock, numbered from 0; subclasses make frame `index`."""

    frame_duration_s = 0.02

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self._start: float | None = None
        self._running = asyncio.Event()
        self._running.set()

    def pause(self) -> None:
        """Send nothing more until `resume()`."""
        self._running.clear()

    def resume(self) -> None:
        """Carry on from now, without a burst to make up for the pause."""
        if self._start is not None:
            self._start = time.monotonic() - self.sent * self.frame_duration_s
        self._running.set()

    async def recv(self) -> Any:
        await self._running.wait()
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent * self.frame_duration_s
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = self.make(self.sent)
        self.sent += 1
        return frame

    def make(self, index: int) -> Any:
        raise NotImplementedError


class ToneTrack(PacedTrack):
    """A 440 Hz tone in 20 ms s16 mono frames; aiortc encodes it to Opus."""

    kind = "audio"
    frame_duration_s = 0.02

    def make(self, index: int) -> av.AudioFrame:
        samples = 960
        t = (np.arange(samples) + index * samples) / 48_000
        data = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = index * samples
        frame.time_base = AUDIO_TIME_BASE
        return frame


class CounterVideoTrack(PacedTrack):
    """320x180 frames at 30 fps whose brightness steps with the frame number; aiortc encodes to VP8."""

    kind = "video"
    frame_duration_s = 1 / 30

    def make(self, index: int) -> av.VideoFrame:
        image = np.full((180, 320, 3), (index * 8) % 200 + 20, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = index * 3000
        frame.time_base = VIDEO_TIME_BASE
        return frame


def encode_vp8(
    frames: int = 30, width: int = 320, height: int = 180, gop: int = 15, bit_rate: int = 600_000
) -> list[bytes]:
    """A VP8 clip: `frames` encoded frames of a moving pattern, a keyframe every `gop` frames."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = bit_rate
    codec.time_base = fractions.Fraction(1, 30)
    codec.gop_size = gop
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "kf-max-dist": str(gop)}
    out = []
    y, x = np.mgrid[0:height, 0:width]
    for index in range(frames):
        image = ((x + y + index * 6) % 256).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(np.stack([image, np.roll(image, index, 1), image // 2], -1), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = index
        if index % gop == 0:
            frame.pict_type = av.video.frame.PictureType.I
        out += [bytes(packet) for packet in codec.encode(frame)]
    out += [bytes(packet) for packet in codec.encode(None)]
    return out


def encode_opus(frames: int = 50) -> list[bytes]:
    """Opus packets of 20 ms each: a tone."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = 48_000, "stereo", "s16"
    codec.bit_rate = 32_000
    codec.time_base = AUDIO_TIME_BASE
    out = []
    for index in range(frames + 2):
        t = (np.arange(960) + index * 960) / 48_000
        mono = (np.sin(2 * np.pi * 660 * t) * 6000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48_000, index * 960, AUDIO_TIME_BASE
        out += [bytes(packet) for packet in codec.encode(frame)]
    return out[:frames]


class PacketLoopTrack(PacedTrack):
    """Sends pre-encoded frames in a loop as `av.Packet`s: aiortc packetizes them without encoding.

    `request_keyframe()` makes the next frame the loop's next keyframe (see `honour_keyframe_requests`).
    """

    def __init__(self, kind: str, payloads: list[bytes]) -> None:
        super().__init__()
        self.kind = kind
        self.payloads = payloads
        self.frame_duration_s = 1 / 30 if kind == "video" else 0.02
        self._ticks = 3000 if kind == "video" else 960
        self._time_base = VIDEO_TIME_BASE if kind == "video" else AUDIO_TIME_BASE
        self._keyframes = [i for i, data in enumerate(payloads) if kind == "video" and not data[0] & 1]
        self._position = 0

    def request_keyframe(self) -> None:
        if self._keyframes and self._position % len(self.payloads) not in self._keyframes:
            here = self._position % len(self.payloads)
            ahead = [i for i in self._keyframes if i > here]
            self._position += (ahead[0] if ahead else len(self.payloads) + self._keyframes[0]) - here

    def make(self, index: int) -> av.Packet:
        packet = av.Packet(self.payloads[self._position % len(self.payloads)])
        self._position += 1
        packet.pts = index * self._ticks
        packet.time_base = self._time_base
        return packet


def honour_keyframe_requests(pc: Any) -> None:
    """Let the `PacketLoopTrack`s a peer connection sends answer PLI/FIR by skipping to a keyframe
    (aiortc's sender only tells its encoder, and these tracks are not encoded)."""
    for sender in pc.getSenders():
        if isinstance(sender.track, PacketLoopTrack):
            sender._send_keyframe = sender.track.request_keyframe
