"""From RTP timestamps to wall-clock time, so tracks of one sender and of several senders line up.

Each received track numbers its frames with `pts` in its codec's clock (1/90000 s for video, 1/48000 s
for Opus), counted from its first frame. Two tracks' pts say nothing about each other: every sender
starts its RTP clock at a random value. RTCP sender reports (SR) do: each pairs an RTP timestamp with
the sender's wall clock (NTP) at the same instant, and a sender uses one wall clock for all its tracks.

`SenderClock` (one per connection) turns the sender's wall clock into ours: the smallest
`arrival - sender time` seen over all its SRs is the clock offset plus the quickest transit, so a
frame's `wall_time_s` is when it left the sender, on our clock, plus that transit. `TrackClock` (one
per track) maps pts through the latest SR. Until the first SR arrives (about a second after media
starts), a track falls back to its own arrivals: pts anchored at the earliest-looking arrival. Either
way a time is kept within 2 s before and 0.5 s after the frame's arrival: peers are not trusted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

NTP_UNIX_OFFSET_S = 2_208_988_800  # seconds from 1900-01-01 (NTP epoch) to 1970-01-01
RTP_WRAP = 1 << 32
# A frame's send time is never trusted beyond its arrival: a sender report is the sender's word, and a
# forged or stepped clock would date every later frame hours away (piling it up in a recorder's queues).
# Sent up to 2 s before it arrived (a sender's queue, a network stall), never more than 0.5 s after
# (the clock offset's own error); anything outside is put on that edge.
EARLIEST_BEFORE_ARRIVAL_S = 2.0
LATEST_AFTER_ARRIVAL_S = 0.5


# Unix time at the monotonic clock's zero, read once. Media time is this plus `time.monotonic()`: Unix
# seconds that a step of the system clock (NTP, an operator) never moves, so frames' send times and a
# recorder's pacing stay on one steady clock.
UNIX_AT_MONOTONIC_ZERO_S = time.time() - time.monotonic()


def media_now_s() -> float:
    """Now on the media clock (Unix seconds that advance with `time.monotonic`)."""
    return UNIX_AT_MONOTONIC_ZERO_S + time.monotonic()


def ntp_to_unix_s(ntp: int) -> float:
    """A 64-bit NTP timestamp (32.32 fixed point since 1900) as Unix seconds."""
    return (ntp >> 32) - NTP_UNIX_OFFSET_S + (ntp & 0xFFFFFFFF) / RTP_WRAP


class SenderClock:
    """How one remote sender's wall clock maps onto ours; shared by all tracks of one connection."""

    def __init__(self) -> None:
        self.offset_s: float | None = None

    def observe(self, sender_unix_s: float, arrival_unix_s: float) -> None:
        """Note an SR sent at `sender_unix_s` (sender's clock) that arrived at `arrival_unix_s` (ours)."""
        offset = arrival_unix_s - sender_unix_s
        # The quickest SR has the least queueing in it, so it is the best estimate of the clock offset.
        if self.offset_s is None or offset < self.offset_s:
            self.offset_s = offset


@dataclass(frozen=True)
class _Report:
    sender_unix_s: float
    rtp_timestamp: int  # as sent, 32-bit


class TrackClock:
    """Wall-clock times for one track's pts, from its sender's SRs (or from arrivals until one comes)."""

    def __init__(self, clock_rate: int, sender: SenderClock) -> None:
        self.clock_rate = clock_rate
        self.time_base = Fraction(1, clock_rate)
        self.sender = sender
        self._report: _Report | None = None
        self._rtp_origin: int | None = None
        self._arrival_anchor_s: float | None = None

    def on_sender_report(self, ntp: int, rtp_timestamp: int, arrival_unix_s: float | None = None) -> None:
        """Note an RTCP SR of this track."""
        sender_s = ntp_to_unix_s(ntp)
        self.sender.observe(sender_s, media_now_s() if arrival_unix_s is None else arrival_unix_s)
        self._report = _Report(sender_s, rtp_timestamp)

    def set_rtp_origin(self, rtp_origin: int) -> None:
        """The RTP timestamp (32-bit, as sent) that pts 0 stands for."""
        self._rtp_origin = rtp_origin % RTP_WRAP

    def wall_time_s(self, pts: int, arrival_unix_s: float) -> float:
        """The Unix time (our clock) at which the frame with this pts was sent, within
        [arrival − 2 s, arrival + 0.5 s]; `arrival_unix_s` is when it reached us, used alone until the
        sender's first SR."""
        sent_s = self._sent_s(pts, arrival_unix_s)
        return min(max(sent_s, arrival_unix_s - EARLIEST_BEFORE_ARRIVAL_S), arrival_unix_s + LATEST_AFTER_ARRIVAL_S)

    def _sent_s(self, pts: int, arrival_unix_s: float) -> float:
        anchor = arrival_unix_s - pts / self.clock_rate
        if self._arrival_anchor_s is None or anchor < self._arrival_anchor_s:
            self._arrival_anchor_s = anchor
        report, origin, offset = self._report, self._rtp_origin, self.sender.offset_s
        if report is None or origin is None or offset is None:
            return self._arrival_anchor_s + pts / self.clock_rate
        # The SR's timestamp as a pts: the 32-bit difference from the origin, unwrapped next to this frame.
        delta = (report.rtp_timestamp - origin - pts) % RTP_WRAP
        if delta >= RTP_WRAP // 2:
            delta -= RTP_WRAP
        report_pts = pts + delta
        return report.sender_unix_s + offset + (pts - report_pts) / self.clock_rate

    @property
    def synchronised(self) -> bool:
        """Whether times come from the sender's reports (comparable across tracks) rather than arrivals."""
        return self._report is not None and self._rtp_origin is not None and self.sender.offset_s is not None
