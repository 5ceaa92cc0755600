"""The muxers a composite's encoded packets fan out to: one encode, several outputs (recordings.md §9.5, §9.6).

The composite is encoded once (`recorder/encoder.py`); every `Output` gets its own copy of each packet and
muxes it on its own, so one output failing (a full disk, an RTMP server gone) never touches the others.

Two kinds of output:

* a **recording** output (`live = False`: the spool file, the interactive HLS segments) gets media time — the
  recording's timeline, paused spans removed — and never sees what is sent while paused;
* a **live** output (`live = True`: RTMP) gets stream time — media time plus the pauses — and, while the
  recording is paused, black frames and silence, so its connection stays open (§9.6).

Packets arrive with `time_base` 1/fps (video) and 1/48000 (audio) and are the output's to keep.
"""

from __future__ import annotations

from typing import Protocol

import av
from av.audio.stream import AudioStream
from av.video.stream import VideoStream


class Output(Protocol):
    """One muxer fed the composite's encoded packets, from the recorder's media thread only."""

    name: str
    live: bool
    # Set by an output that needs a keyframe to start from (a live stream that just connected); the encoder makes
    # its next frame one and clears it.
    keyframe_wanted: bool

    def open(self, video: VideoStream, audio: AudioStream) -> None:
        """Start, with the encoders' streams as templates (codec parameters, extradata included)."""

    def write_video(self, packet: av.Packet, wall_s: float) -> None:
        """One encoded video frame, shown at Unix time `wall_s` in the meeting."""

    def write_audio(self, packet: av.Packet) -> None:
        """One encoded audio frame."""

    def close(self) -> None:
        """Finish: whatever was written stays complete. Called once, whatever happened before."""


def copy_packet(packet: av.Packet) -> av.Packet:
    """A packet of its own for one output: muxing takes a packet's data, so outputs never share one."""
    copy = av.Packet(bytes(packet))
    copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
    copy.is_keyframe = packet.is_keyframe
    return copy
