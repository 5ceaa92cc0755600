"""Streaming the composite to an RTMP server while it is recorded (recordings.md §9.6).

A live output: FLV (H.264 + AAC, the composite's own packets) published to an `rtmp://` or `rtmps://` URL, black
and silent while the recording is paused. The network is a thread's business, never the recorder's: the media
thread only puts packets in a bounded queue and returns, so a slow or dead server can delay nothing but the
stream. When the server refuses or drops the connection, the thread connects again every `retry_s`, asks the
encoder for a keyframe, and the stream starts again from it with timestamps from zero.

The URL's path ends in the stream key, a secret: logs name the server and application only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from urllib.parse import urlsplit

import av
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

log = logging.getLogger(__name__)

# About ten seconds of packets at 30 fps; a server slower than that loses the stream up to the next keyframe.
QUEUE_PACKETS = 800
# Seconds a connection attempt or a write may block before the connection counts as lost.
NETWORK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class _Packet:
    """A packet as the thread needs it: its own bytes, so nothing is shared with the media thread."""

    video: bool
    data: bytes
    pts: int
    dts: int
    time_base: Fraction
    keyframe: bool


class RtmpOutput:
    """Publishes the composite to one RTMP URL, reconnecting every `retry_s` while the recording lasts."""

    live = True

    def __init__(self, url: str, retry_s: float = 5.0) -> None:
        self.url = url
        self.name = redacted(url)
        self.retry_s = retry_s
        self.connections = 0  # publishes that got as far as sending the header
        self.keyframe_wanted = False
        self._queue: queue.Queue[_Packet] = queue.Queue(QUEUE_PACKETS)
        self._waiting_for_keyframe = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtmp-output", daemon=True)
        self._templates: OutputContainer | None = None
        if urlsplit(url).scheme == "rtmps":
            # PyAV (18.1) opens an output URL with `avio_open`, which takes no options, so FFmpeg's TLS is never
            # told to check the server's certificate (`tls_verify`): a server with any certificate is accepted.
            log.warning("RTMP %s: encrypted, but the server's certificate is not verified", self.name)

    def open(self, video: VideoStream, audio: AudioStream) -> None:
        # Copies of the codec parameters that the thread may read at every reconnection, whatever becomes of
        # the encoders' own streams meanwhile.
        self._templates = av.open(os.devnull, "w", format="null")
        self._video = self._templates.add_stream_from_template(video)
        self._audio = self._templates.add_stream_from_template(audio)
        self._thread.start()

    def write_video(self, packet: av.Packet, wall_s: float) -> None:
        self._put(packet, video=True)

    def write_audio(self, packet: av.Packet) -> None:
        self._put(packet, video=False)

    def close(self) -> None:
        """End the stream; waits for the thread at most as long as one network operation may take."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(NETWORK_TIMEOUT_S + 1)

    def _put(self, packet: av.Packet, *, video: bool) -> None:
        keyframe = video and packet.is_keyframe
        if self._waiting_for_keyframe and not keyframe:
            return
        assert packet.pts is not None and packet.dts is not None and packet.time_base is not None
        item = _Packet(video, bytes(packet), packet.pts, packet.dts, packet.time_base, keyframe)
        try:
            self._queue.put_nowait(item)
            self._waiting_for_keyframe = False
        except queue.Full:
            # The server is not keeping up: what follows would not decode without the frames dropped here.
            self._waiting_for_keyframe = True

    # --- the thread --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self._publish()
                except (OSError, av.FFmpegError) as error:
                    log.warning("RTMP %s: %s; connecting again in %.0f s", self.name, _reason(error), self.retry_s)
                self._discard_until(time.monotonic() + self.retry_s)
        finally:
            if self._templates is not None:
                self._templates.close()

    def _publish(self) -> None:
        """One connection: from a fresh keyframe until the recording ends or the server goes."""
        container = av.open(self.url, "w", format="flv", timeout=NETWORK_TIMEOUT_S)
        try:
            video = container.add_stream_from_template(self._video)
            audio = container.add_stream_from_template(self._audio)
            container.start_encoding()  # connects and publishes
            self.connections += 1
            log.info("RTMP %s: publishing", self.name)
            self.keyframe_wanted = True  # rather than wait up to a second for the next one
            first = self._next_keyframe()
            if first is None:
                return
            start_s = first.pts * first.time_base  # the stream's time 0, for audio and video alike
            item: _Packet | None = first
            while item is not None:
                offset = round(start_s / item.time_base)
                if item.dts >= offset:  # audio from just before the first keyframe has no place in the stream
                    packet = av.Packet(item.data)
                    packet.pts, packet.dts, packet.time_base = item.pts - offset, item.dts - offset, item.time_base
                    packet.is_keyframe = item.keyframe
                    packet.stream = video if item.video else audio
                    container.mux(packet)
                item = self._get()
        finally:
            with contextlib.suppress(OSError, av.FFmpegError):
                container.close()

    def _next_keyframe(self) -> _Packet | None:
        while True:
            item = self._get()
            if item is None or (item.video and item.keyframe):
                return item

    def _get(self) -> _Packet | None:
        """The next packet; None once the output is closed and what was queued before has been sent."""
        while True:
            try:
                return self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stopping.is_set():
                    return None

    def _discard_until(self, deadline: float) -> None:
        """Wait before connecting again, dropping what comes meanwhile: a new connection starts with the present."""
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=remaining)


def redacted(url: str) -> str:
    """The URL without its stream key (the last path segment) and without credentials: fit for a log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    application = parts.path.rsplit("/", 1)[0] if "/" in parts.path.strip("/") else ""
    return f"{parts.scheme}://{host}{application}/…"


def _reason(error: BaseException) -> str:
    """What went wrong, without the URL FFmpeg's messages repeat (it holds the stream key)."""
    strerror = getattr(error, "strerror", None)
    return f"{type(error).__name__}: {strerror}" if strerror else type(error).__name__
