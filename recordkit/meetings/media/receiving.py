"""Receiving a track without decoding it: aiortc's receiver, tapped after frame reassembly.

aiortc's `RTCRtpReceiver` depacketizes RTP, reassembles whole encoded frames in its jitter buffer and
hands each to a decoder thread with `self.__decoder_queue.put((codec, encoded_frame))`. `tap()` puts
a stand-in in place of that queue: encoded frames go to our sinks (forwarders, recorder readers) on
the event loop, and the decoder thread only ever sees the end marker, so nothing is decoded unless a
sink decodes (`decoding.py`). Everything else — SRTP, NACK and RTX, RTCP receiver reports, REMB —
stays aiortc's.

This module is the one place that reaches into aiortc's private receiver state (pinned aiortc 1.16.0):
the decoder queue, the audio jitter buffer, the RTP timestamp origin, and the RTCP handler (for sender
reports). Each use says why.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import av
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpSrPacket

from recordkit.meetings.media.timing import SenderClock, TrackClock, media_now_s

log = logging.getLogger(__name__)

# A keyframe request is repeated at this interval until a keyframe arrives, because a publisher may
# ignore one: libwebrtc (Chrome) drops a request that comes within 300 ms of the last one it accepted
# (`kMinKeyframeSendIntervalMs`, video/encoder_rtcp_feedback.cc), and accepts — starting that window —
# a request that arrives before its encoder is set up, which then makes no keyframe. Just above 300 ms,
# so a repeat is never inside the window of the request before it; several subscribers attaching at
# once share the requests instead of each costing the publisher a keyframe.
KEYFRAME_REQUEST_INTERVAL_S = 0.35

# The loop keeps only weak references to tasks: hold the fire-and-forget RTCP sends until they finish.
_background: set[asyncio.Task[None]] = set()


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame as the publisher sent it: codec bytes without RTP framing.

    `pts` counts in `time_base` from the track's first frame; `wall_time_s` is when the sender sent
    it, as a Unix time on this machine's clock (see `timing.py`).
    """

    data: bytes
    pts: int
    time_base: Fraction
    keyframe: bool
    wall_time_s: float

    def packet(self) -> av.Packet:
        """The frame as an `av.Packet` with pts and time base, which aiortc's sender packetizes as is."""
        packet = av.Packet(self.data)
        packet.pts = self.pts
        packet.time_base = self.time_base
        return packet


class FrameSink(Protocol):
    """Something fed a track's encoded frames on the event loop; it must not block."""

    def put(self, frame: EncodedFrame) -> None: ...

    def end(self) -> None:
        """The track ended; no frame follows."""


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether an encoded frame can be decoded on its own (every audio frame can)."""
    mime = mime_type.lower()
    if mime == "video/vp8":
        # RFC 6386 §9.1: bit 0 of the frame tag is 0 for a key frame.
        return bool(data) and not data[0] & 0x01
    if mime == "video/h264":
        # An IDR slice (5) or a sequence parameter set (7) starts a decodable picture.
        return any(nal_type in (5, 7) for nal_type in _h264_nal_types(data))
    return True


def _h264_nal_types(data: bytes) -> list[int]:
    types = []
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        types.append(data[start + 3] & 0x1F)
        start = data.find(b"\x00\x00\x01", start + 3)
    return types


class ReceivedTrack:
    """One remote track as received, handed out as encoded frames to any number of sinks."""

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        codec: RTCRtpCodecParameters,
        sender_clock: SenderClock,
        media_ssrc: int | None = None,
    ) -> None:
        self.kind = codec.mimeType.split("/")[0].lower()
        self.codec = codec
        self.clock = TrackClock(codec.clockRate, sender_clock)
        self.frames_received = 0
        self.first_frame_s: float | None = None  # media_now_s() of the first frame
        self.ended = False
        self._receiver = receiver
        self._media_ssrc = media_ssrc
        self._sinks: list[FrameSink] = []
        self._last_keyframe_request = -KEYFRAME_REQUEST_INTERVAL_S
        self._keyframe_wanted = False
        self._keyframe_timer: asyncio.TimerHandle | None = None
        self.keyframe_requests_sent = 0
        self._ended_callbacks: list[Callable[[], None]] = []
        _tap(receiver, self)

    @property
    def mime_type(self) -> str:
        return self.codec.mimeType

    def add_sink(self, sink: FrameSink) -> None:
        """Start feeding `sink`; a track that already ended ends it at once."""
        if self.ended:
            sink.end()
            return
        self._sinks.append(sink)

    def remove_sink(self, sink: FrameSink) -> None:
        """Stop feeding `sink` (nothing happens if it was not fed)."""
        if sink in self._sinks:
            self._sinks.remove(sink)

    def on_ended(self, callback: Callable[[], None]) -> None:
        """Call `callback` once when the track ends."""
        self._ended_callbacks.append(callback)

    def request_keyframe(self) -> None:
        """Ask the sender for a keyframe (RTCP PLI), and again every `KEYFRAME_REQUEST_INTERVAL_S` until
        one arrives. Requests made while one is outstanding are merged into it; the first PLI goes out
        at once unless the last one left less than the interval ago."""
        if self.kind != "video" or self.ended:
            return
        self._keyframe_wanted = True
        if self._keyframe_timer is None:
            wait_s = max(0.0, self._last_keyframe_request + KEYFRAME_REQUEST_INTERVAL_S - time.monotonic())
            self._keyframe_timer = asyncio.get_running_loop().call_later(wait_s, self._send_keyframe_request)

    def _send_keyframe_request(self) -> None:
        self._keyframe_timer = None
        if not self._keyframe_wanted or self.ended:
            return
        # Before the sender's first packet its SSRC may be unknown; the repeat finds it once media flows.
        ssrc = self._media_ssrc or self._seen_ssrc()
        if ssrc is not None:
            self._last_keyframe_request = time.monotonic()
            self.keyframe_requests_sent += 1
            # `_send_rtcp_pli` is what aiortc itself calls on picture loss; it only sends once RTCP is set
            # up (a request before that is lost, and repeated).
            task = asyncio.get_running_loop().create_task(self._receiver._send_rtcp_pli(ssrc))
            _background.add(task)
            task.add_done_callback(_background.discard)
        self._keyframe_timer = asyncio.get_running_loop().call_later(
            KEYFRAME_REQUEST_INTERVAL_S, self._send_keyframe_request
        )

    def _stop_keyframe_requests(self) -> None:
        self._keyframe_wanted = False
        if self._keyframe_timer is not None:
            self._keyframe_timer.cancel()
            self._keyframe_timer = None

    def _seen_ssrc(self) -> int | None:
        sources = sorted(self._receiver.getSynchronizationSources(), key=lambda source: source.timestamp)
        return sources[-1].source if sources else None

    def _on_frame(self, codec: RTCRtpCodecParameters, jitter_frame: JitterFrame) -> None:
        if not jitter_frame.data:
            return
        arrival_s = media_now_s()
        if self.frames_received == 0:
            self.first_frame_s = arrival_s
            # aiortc counts pts from the first frame's RTP timestamp; the SR mapping needs that origin.
            mapper = self._receiver._RTCRtpReceiver__timestamp_mapper  # type: ignore[attr-defined]
            self.clock.set_rtp_origin(mapper._origin)
        self.frames_received += 1
        frame = EncodedFrame(
            data=jitter_frame.data,
            pts=jitter_frame.timestamp,
            time_base=self.clock.time_base,
            keyframe=is_keyframe(codec.mimeType, jitter_frame.data),
            wall_time_s=self.clock.wall_time_s(jitter_frame.timestamp, arrival_s),
        )
        if frame.keyframe and self._keyframe_wanted:
            # Every sink that asked is attached now and gets this frame: the request is answered.
            self._stop_keyframe_requests()
        for sink in list(self._sinks):
            sink.put(frame)

    def _on_sender_report(self, packet: RtcpSrPacket) -> None:
        if self._media_ssrc is None:
            self._media_ssrc = packet.ssrc
        info = packet.sender_info
        if info.ntp_timestamp == 0:
            # aiortc sends reports with NTP and RTP 0 before a track's first packet: they say nothing of time.
            return
        self.clock.on_sender_report(info.ntp_timestamp, info.rtp_timestamp)

    def _on_end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self._stop_keyframe_requests()
        sinks, self._sinks = self._sinks, []
        for sink in sinks:
            sink.end()
        for callback in self._ended_callbacks:
            callback()


class _DecoderQueueTap:
    """Stands in for the receiver's decoder queue (a `queue.Queue` in aiortc).

    `put` runs on the event loop (aiortc calls it from its RTP handler) and hands frames to the track.
    The decoder thread blocks in `get` until the receiver stops and puts the end marker (None), which is
    passed through so the thread exits and ends the receiver's own track as usual.
    """

    def __init__(self, track: ReceivedTrack) -> None:
        self._track = track
        self._end: queue.Queue[None] = queue.Queue()

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            self._end.put(None)
            self._track._on_end()
            return
        self._track._on_frame(*item)

    def get(self) -> None:
        return self._end.get()


def _tap(receiver: RTCRtpReceiver, track: ReceivedTrack) -> None:
    """Route the receiver's encoded frames and sender reports to `track`. Call before media flows
    (before the connection is up): aiortc hands the queue to its decoder thread when receiving starts."""
    receiver._RTCRtpReceiver__decoder_queue = _DecoderQueueTap(track)  # type: ignore[attr-defined]
    if track.kind == "audio":
        # aiortc holds 4 audio frames (80 ms) back to smooth decoding; forwarded audio needs no such
        # cushion, and holding audio longer than video would skew the two when the subscriber syncs them.
        receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=16, prefetch=0)  # type: ignore[attr-defined]
    handle_rtcp = receiver._handle_rtcp_packet

    async def handle_rtcp_packet(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            track._on_sender_report(packet)
        await handle_rtcp(packet)

    receiver._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
