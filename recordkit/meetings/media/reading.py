"""Reading one received track: its encoded frames as they come, or decoded frames on demand.

A reader is a sink on a `ReceivedTrack` for as long as it is open, and only a `FrameReader` decodes —
so a track nobody reads decoded costs no decoding. Both are async iterators that end when the track
ends, and async context managers that stop reading on exit.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType

import av
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame

from recordkit.meetings.media.receiving import EncodedFrame, ReceivedTrack

# About 8 s of video or 5 s of audio: a reader further behind than this has stalled, not lagged.
MAX_QUEUED_FRAMES = 256


@dataclass(frozen=True, slots=True)
class TimedFrame:
    """A decoded frame with its presentation time (`pts` in `time_base`) and send time (Unix seconds)."""

    frame: av.VideoFrame | av.AudioFrame
    pts: int
    time_base: Fraction
    wall_time_s: float


class PacketReader:
    """The encoded frames of one track, from now on, starting at a keyframe for video."""

    def __init__(self, track: ReceivedTrack, max_queued: int = MAX_QUEUED_FRAMES) -> None:
        self.track = track
        self.dropped = 0
        self._queue: deque[EncodedFrame] = deque()
        self._max_queued = max_queued
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._closed = False
        self._need_keyframe = track.kind == "video"
        track.add_sink(self)
        if self._need_keyframe:
            track.request_keyframe()

    def put(self, frame: EncodedFrame) -> None:
        """Called by the track for each frame; drops what a decoder could not start from."""
        if self._need_keyframe:
            if not frame.keyframe:
                return
            self._need_keyframe = False
        if len(self._queue) >= self._max_queued:
            # The reader stalled: throw the backlog away and start again from a fresh keyframe.
            self.dropped += len(self._queue)
            self._queue.clear()
            if self.track.kind == "video" and not frame.keyframe:
                self._need_keyframe = True
                self.track.request_keyframe()
                return
        self._queue.append(frame)
        self._wake()

    def end(self) -> None:
        """Called by the track when it ends."""
        self._ended = True
        self._wake()

    def close(self) -> None:
        """Stop reading; the iterator ends."""
        self._closed = True
        self.track.remove_sink(self)
        self._queue.clear()
        self._wake()

    async def next(self) -> EncodedFrame | None:
        """The next frame, or None once the track ended (and everything queued was read) or on close."""
        while not self._queue:
            if self._ended or self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._queue.popleft()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> PacketReader:
        return self

    async def __anext__(self) -> EncodedFrame:
        frame = await self.next()
        if frame is None:
            raise StopAsyncIteration
        return frame

    async def __aenter__(self) -> PacketReader:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class FrameReader:
    """The decoded frames of one track, from now on. Decoding runs in the default executor, one frame
    at a time, and only while this reader is open."""

    def __init__(self, track: ReceivedTrack, max_queued: int = MAX_QUEUED_FRAMES) -> None:
        self.track = track
        self.decode_errors = 0
        self._packets = PacketReader(track, max_queued)
        self._decoder = get_decoder(track.codec)
        self._ready: deque[TimedFrame] = deque()

    @property
    def dropped(self) -> int:
        """Encoded frames thrown away because this reader fell too far behind."""
        return self._packets.dropped

    def close(self) -> None:
        """Stop reading and decoding; the iterator ends."""
        self._packets.close()

    async def next(self) -> TimedFrame | None:
        """The next decoded frame, or None once the track ended or on close."""
        loop = asyncio.get_running_loop()
        while not self._ready:
            encoded = await self._packets.next()
            if encoded is None:
                return None
            try:
                frames = await loop.run_in_executor(
                    None, self._decoder.decode, JitterFrame(data=encoded.data, timestamp=encoded.pts)
                )
            except av.FFmpegError:
                # Corrupt input: keep the decoder and ask for a fresh picture, as aiortc does.
                self.decode_errors += 1
                self.track.request_keyframe()
                continue
            for frame in frames:
                frame.pts = encoded.pts if frame.pts is None else frame.pts
                frame.time_base = encoded.time_base
                # Frames past the first from one packet (never seen with VP8/Opus) keep their own pts.
                offset_s = float((frame.pts - encoded.pts) * encoded.time_base)
                self._ready.append(TimedFrame(frame, frame.pts, encoded.time_base, encoded.wall_time_s + offset_s))
        return self._ready.popleft()

    def __aiter__(self) -> FrameReader:
        return self

    async def __anext__(self) -> TimedFrame:
        frame = await self.next()
        if frame is None:
            raise StopAsyncIteration
        return frame

    async def __aenter__(self) -> FrameReader:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
