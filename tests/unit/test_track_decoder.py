"""A track's decoder works on the thread that calls it: no thread pool per decoder (issue 15)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from recordkit.bot.synthetic import VP8_BITRATE, SyntheticClock, SyntheticVideoTrack, encode_vp8
from recordkit.meetings.media.reading import PacketReader, TrackDecoder
from recordkit.meetings.media.receiving import EncodedFrame, ReceivedTrack

FRAMES = 10


@dataclass
class _Packets:
    """What `TrackDecoder` reads of its `PacketReader`: the track."""

    track: ReceivedTrack


def _track(mime_type: str) -> ReceivedTrack:
    track = object.__new__(ReceivedTrack)  # no receiver: only the codec is read
    track.codec = RTCRtpCodecParameters(mimeType=mime_type, clockRate=90_000, payloadType=96)
    track.kind = "video"
    return track


def _h264(frames: list[av.VideoFrame]) -> list[bytes]:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"preset": "veryfast", "tune": "zerolatency", "profile": "baseline"}
    payloads = []
    for index, frame in enumerate(frames):
        frame.pts, frame.time_base = index, encoder.time_base
        payloads += [bytes(packet) for packet in encoder.encode(frame)]
    return payloads


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.parametrize("mime_type", ["video/VP8", "video/H264"])
def test_decoding_video_starts_no_threads(mime_type: str) -> None:
    source = SyntheticVideoTrack(SyntheticClock(), 640, 360)
    frames = [source.frame_at(index) for index in range(FRAMES)]
    payloads = encode_vp8(frames, VP8_BITRATE, 30) if mime_type == "video/VP8" else _h264(frames)
    decoder = TrackDecoder(cast(PacketReader, _Packets(_track(mime_type))), lambda call: call())
    before = _threads()
    decoded = []
    for index, payload in enumerate(payloads):
        encoded = EncodedFrame(payload, index * 3000, Fraction(1, 90_000), index == 0, 1000.0 + index / 30)
        decoded += decoder.decode(encoded)
    assert len(decoded) == len(payloads) == FRAMES
    assert (decoded[-1].frame.width, decoded[-1].frame.height) == (640, 360)
    # FFmpeg's default would have started a slice thread per core (two here) when the codec opened.
    assert _threads() == before
