"""Forwarding: a subscriber's receive section fed with another participant's encoded frames.

aiortc's `RTCRtpSender` takes what its track's `recv()` returns; given an `av.Packet` instead of a
frame it skips encoding and only packetizes (`encoder.pack(packet)`), so forwarded media is never
re-encoded. A `SlotTrack` is that track. It is set on the sender once, when the answer is made, and
lives as long as the peer: aiortc stops a sender for good when its track ends, so a slot switches its
*source* (the published track it forwards) instead of replacing the sender's track.

Timestamps: each source counts pts from its own first frame; the slot shifts every source onto one
continuous timeline (advancing by the wall time between the last frame of the old source and the first
of the new), so the subscriber sees one RTP stream whose timestamps never jump back.

Keyframes: a video slot starts forwarding a source at a keyframe and asks the publisher for one when
it attaches; a subscriber's own PLI/FIR is passed upstream (`relay_keyframe_requests`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from fractions import Fraction

import av
from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from recordkit.meetings.media.receiving import EncodedFrame, ReceivedTrack

# About 2 s of video: a sender that far behind is stalled; start again from a fresh keyframe.
MAX_QUEUED_FRAMES = 64


class SlotTrack(MediaStreamTrack):
    """The outgoing track of one receive section: forwards whichever published track is attached."""

    def __init__(self, kind: str, clock_rate: int) -> None:
        super().__init__()
        self.kind = kind
        self.clock_rate = clock_rate
        self.time_base = Fraction(1, clock_rate)
        self.source: ReceivedTrack | None = None
        self.frames_forwarded = 0
        self.frames_dropped = 0
        self._queue: deque[tuple[bytes, int]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._need_keyframe = False
        self._pts_offset: int | None = None
        self._last_pts: int | None = None
        self._last_sent_s = 0.0

    def attach(self, source: ReceivedTrack) -> None:
        """Forward `source` from its next keyframe on (replacing any source attached before)."""
        self.detach()
        self.source = source
        self._pts_offset = None
        self._need_keyframe = self.kind == "video"
        source.add_sink(self)
        source.request_keyframe()

    def detach(self) -> None:
        """Stop forwarding; the slot stays open and silent until the next `attach`."""
        if self.source is not None:
            self.source.remove_sink(self)
            self.source = None

    def request_keyframe(self) -> None:
        """The subscriber lost a picture: ask the publisher for a keyframe."""
        if self.source is not None:
            self.source.request_keyframe()

    def put(self, frame: EncodedFrame) -> None:
        """Called by the source for each frame."""
        if self._need_keyframe:
            if not frame.keyframe:
                return
            self._need_keyframe = False
        if len(self._queue) >= MAX_QUEUED_FRAMES:
            self.frames_dropped += len(self._queue)
            self._queue.clear()
            if not frame.keyframe and self.kind == "video":
                self.frames_dropped += 1
                self._need_keyframe = True
                self.request_keyframe()
                return
        now = time.monotonic()
        if self._pts_offset is None:
            # A new source: continue the timeline where the last one stopped, plus the time in between.
            start = 0
            if self._last_pts is not None:
                start = self._last_pts + max(1, round((now - self._last_sent_s) * self.clock_rate))
            self._pts_offset = start - frame.pts
        pts = frame.pts + self._pts_offset
        self._last_pts, self._last_sent_s = pts, now
        self._queue.append((frame.data, pts))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def end(self) -> None:
        """Called by the source when it ends; the room attaches the next one."""
        self.source = None

    async def recv(self) -> av.Packet:  # type: ignore[override]
        """The next frame to send, as an `av.Packet` (aiortc packs it without encoding)."""
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        data, pts = self._queue.popleft()
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self.time_base
        self.frames_forwarded += 1
        return packet

    def stop(self) -> None:
        """End the slot for good (the peer is closing)."""
        self.detach()
        super().stop()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def relay_keyframe_requests(sender: RTCRtpSender, slot: SlotTrack) -> None:
    """Pass the subscriber's PLI/FIR for this sender on to the publisher of the slot's source.

    aiortc answers PLI/FIR by calling the sender's `_send_keyframe()`, which only flags its encoder —
    and a forwarding sender never encodes. Replacing that method on this one sender redirects it.
    """
    sender._send_keyframe = slot.request_keyframe  # type: ignore[method-assign]
