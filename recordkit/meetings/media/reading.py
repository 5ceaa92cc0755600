"""Reading one received track: its encoded frames as they come, or decoded frames on demand.

A reader is a sink on a `ReceivedTrack` for as long as it is open, and only a `FrameReader` (or a
`TrackDecoder` its owner drives in a thread of its own, as the recorder does) decodes — so a track nobody
reads decoded costs no decoding. Both readers are async iterators that end when the track ends, and async
context managers that stop reading on exit.

Peers are not trusted: a reader's queue is bounded in frames and bytes (a stalled reader drops its
backlog, counted, and starts again at a keyframe), a reader told to skip an interval (a paused recording)
drops those frames as they come instead of queueing them, and a `FrameReader` refuses, before decoding,
any frame whose header declares a picture larger than its limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType

import av
from aiortc.codecs import get_decoder
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame

from recordkit.meetings.media.bitstream import DEFAULT_MAX_FRAME_SIZE, FrameSize, MalformedHeader, declared_sizes
from recordkit.meetings.media.receiving import EncodedFrame, ReceivedTrack

log = logging.getLogger(__name__)

# About 8 s of video or 5 s of audio: a reader further behind than this has stalled, not lagged.
MAX_QUEUED_FRAMES = 256
# Encoded frames rarely pass 200 kB; this many bytes queued means a stall or a flood, not a lag.
MAX_QUEUED_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TimedFrame:
    """A decoded frame with its presentation time (`pts` in `time_base`) and send time (Unix seconds)."""

    frame: av.VideoFrame | av.AudioFrame
    pts: int
    time_base: Fraction
    wall_time_s: float


class PacketReader:
    """The encoded frames of one track, from now on, starting at a keyframe for video."""

    def __init__(
        self, track: ReceivedTrack, max_queued: int = MAX_QUEUED_FRAMES, max_queued_bytes: int = MAX_QUEUED_BYTES
    ) -> None:
        self.track = track
        self.dropped = 0
        self.skipped = 0
        self._queue: deque[EncodedFrame] = deque()
        self._queued_bytes = 0
        self._max_queued = max_queued
        self._max_queued_bytes = max_queued_bytes
        self._skip: Callable[[float], bool] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._closed = False
        self._need_keyframe = track.kind == "video"
        self._keyframe_asked = self._need_keyframe
        track.add_sink(self)
        if self._need_keyframe:
            track.request_keyframe()

    def skip_when(self, sent_in_skipped_interval: Callable[[float], bool]) -> None:
        """Drop, unqueued, every frame from now on whose send time (`wall_time_s`) the predicate names."""
        self._skip = sent_in_skipped_interval

    def restart_at_keyframe(self) -> None:
        """Drop everything up to the next keyframe, and ask for one (what follows a refused frame)."""
        if self.track.kind == "video":
            self._need_keyframe = self._keyframe_asked = True
            self.track.request_keyframe()

    def put(self, frame: EncodedFrame) -> None:
        """Called by the track for each frame; drops what a decoder could not start from."""
        if self._skip is not None and self._skip(frame.wall_time_s):
            self.skipped += 1
            # What comes after the skipped interval refers to frames that were never queued: it needs a keyframe,
            # asked for once the interval is over (one sent within it would be skipped too).
            if self.track.kind == "video" and not self._need_keyframe:
                self._need_keyframe, self._keyframe_asked = True, False
            return
        if self._need_keyframe:
            if not frame.keyframe:
                if not self._keyframe_asked:
                    self._keyframe_asked = True
                    self.track.request_keyframe()
                return
            self._need_keyframe = False
        if len(self._queue) >= self._max_queued or self._queued_bytes + len(frame.data) > self._max_queued_bytes:
            # The reader stalled: throw the backlog away and start again from a fresh keyframe.
            self.dropped += len(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            if self.track.kind == "video" and not frame.keyframe:
                self.dropped += 1
                self.restart_at_keyframe()
                return
        self._queue.append(frame)
        self._queued_bytes += len(frame.data)
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
        self._queued_bytes = 0
        self._wake()

    async def next(self) -> EncodedFrame | None:
        """The next frame, or None once the track ended (and everything queued was read) or on close."""
        while not self._queue:
            if self._ended or self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        frame = self._queue.popleft()
        self._queued_bytes -= len(frame.data)
        return frame

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


class TrackDecoder:
    """Decodes one track's encoded frames in the thread that calls `decode` (one thread at a time).

    A frame whose header declares a picture over `max_frame_size` is refused before decoding, and so are the
    frames after it until a keyframe that fits; a corrupt frame is counted and skipped. Either way the publisher
    is asked for a keyframe, through `on_loop`: it runs a call on the event loop, which owns the reader and the
    track (`loop.call_soon_threadsafe` from a worker thread).
    """

    def __init__(
        self,
        packets: PacketReader,
        on_loop: Callable[[Callable[[], None]], object],
        max_frame_size: FrameSize = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.track = packets.track
        self.decode_errors = 0
        self.refused = 0
        self.max_frame_size = max_frame_size
        self._packets = packets
        self._on_loop = on_loop
        self._decoder = get_decoder(self.track.codec)
        _decode_on_one_thread(self._decoder)
        self._refusing = False

    def decode(self, encoded: EncodedFrame) -> list[TimedFrame]:
        """The frames decoded from `encoded` (none for a refused or corrupt frame)."""
        if not self._within_size_limit(encoded):
            return []
        try:
            frames = self._decoder.decode(JitterFrame(data=encoded.data, timestamp=encoded.pts))
        except av.FFmpegError:
            # Corrupt input: keep the decoder and ask for a fresh picture, as aiortc does.
            self.decode_errors += 1
            self._on_loop(self.track.request_keyframe)
            return []
        timed = []
        for frame in frames:
            frame.pts = encoded.pts if frame.pts is None else frame.pts
            frame.time_base = encoded.time_base
            # Frames past the first from one packet (never seen with VP8/Opus) keep their own pts.
            offset_s = float((frame.pts - encoded.pts) * encoded.time_base)
            timed.append(TimedFrame(frame, frame.pts, encoded.time_base, encoded.wall_time_s + offset_s))
        return timed

    def _within_size_limit(self, encoded: EncodedFrame) -> bool:
        """False for a frame whose header declares a picture over the limit (or cannot be read), and for
        the frames after it until a keyframe that fits: the decoder never sees the declared size."""
        if self.track.kind != "video":
            return True
        try:
            sizes = declared_sizes(self.track.mime_type, encoded.data)
            unreadable = None
        except MalformedHeader as error:
            sizes, unreadable = [], str(error)
        too_large = [size for size in sizes if not size.fits(self.max_frame_size)]
        if unreadable is None and not too_large:
            if encoded.keyframe:
                self._refusing = False
            return not self._refusing
        self.refused += 1
        if self.refused == 1:
            reason = unreadable or f"it declares {too_large[0]}, over the limit of {self.max_frame_size}"
            log.warning("refusing frames of a %s track before decoding: %s", self.track.mime_type, reason)
        self._refusing = True
        self._on_loop(self._packets.restart_at_keyframe)
        return False


def _decode_on_one_thread(decoder: Decoder) -> None:
    """Make one of aiortc's video decoders (each holds a PyAV codec context, `codec`) decode on its caller's
    thread alone.

    FFmpeg's default, a thread per core, only adds hand-offs here: WebRTC senders send one slice per H.264 frame
    and, from libvpx, one token partition per VP8 frame, which those threads cannot share; and the recordings on
    a machine already share its cores. Measured on 640x360 frames: −24 % CPU per H.264 frame, VP8 unchanged
    (bench/README).
    """
    codec = getattr(decoder, "codec", None)
    if isinstance(codec, av.CodecContext):
        codec.thread_count = 1


class FrameReader:
    """The decoded frames of one track, from now on. Decoding runs in the default executor, one frame
    at a time, and only while this reader is open."""

    def __init__(
        self,
        track: ReceivedTrack,
        max_queued: int = MAX_QUEUED_FRAMES,
        max_frame_size: FrameSize = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.track = track
        self._packets = PacketReader(track, max_queued)
        self._decoder = TrackDecoder(self._packets, self._on_loop, max_frame_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: deque[TimedFrame] = deque()

    @property
    def max_frame_size(self) -> FrameSize:
        return self._decoder.max_frame_size

    @property
    def decode_errors(self) -> int:
        """Frames the decoder could not decode."""
        return self._decoder.decode_errors

    @property
    def refused(self) -> int:
        """Frames refused before decoding: over the size limit, or after such a frame until a keyframe."""
        return self._decoder.refused

    @property
    def dropped(self) -> int:
        """Encoded frames thrown away because this reader fell too far behind."""
        return self._packets.dropped

    @property
    def skipped(self) -> int:
        """Encoded frames dropped unqueued because they fell in an interval `skip_when` names."""
        return self._packets.skipped

    def skip_when(self, sent_in_skipped_interval: Callable[[float], bool]) -> None:
        """Drop, undecoded, every frame from now on whose send time the predicate names."""
        self._packets.skip_when(sent_in_skipped_interval)

    def close(self) -> None:
        """Stop reading and decoding; the iterator ends."""
        self._packets.close()

    async def next(self) -> TimedFrame | None:
        """The next decoded frame, or None once the track ended or on close."""
        self._loop = asyncio.get_running_loop()
        while not self._ready:
            encoded = await self._packets.next()
            if encoded is None:
                return None
            self._ready.extend(await self._loop.run_in_executor(None, self._decoder.decode, encoded))
        return self._ready.popleft()

    def _on_loop(self, action: Callable[[], None]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(action)

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
