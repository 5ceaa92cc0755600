"""Writing a track's packets into a file as they were received: no decode, no encode (recordings.md §11.1).

Opus goes into WebM, VP8 into WebM, H264 into fragmented MP4. A packet keeps its payload and its place in
time: its `pts` (the sender's RTP clock, counted by the media plane from the track's first frame) rebased to
the file's first packet. Nothing is invented: a stretch the sender did not send (a network loss, a muted
sender's DTX silence, a stall) stays a gap between two timestamps, so the file's timeline is the sender's.

Every file survives a killed process up to its last second or so, like the composite spool files
(`encoder.py`): WebM clusters are cut every second, MP4 is fragmented at keyframes, and `flush_packets`
hands each finished cluster or fragment to the OS at once.

`PassthroughFile` is not thread-safe: one thread owns it, `close()` included (PyAV must never write to a
container another thread closes).
"""

from __future__ import annotations

import functools
import io
import struct
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.container import InputContainer, OutputContainer
from av.stream import Stream

from recordkit.meetings.media.receiving import EncodedFrame

OPUS_SAMPLE_RATE = 48_000
OPUS_TIME_BASE = Fraction(1, OPUS_SAMPLE_RATE)
# Opus frame sizes by TOC configuration (RFC 6716 §3.1), in 48 kHz samples: SILK 10/20/40/60 ms, hybrid
# 10/20 ms, CELT 2.5/5/10/20 ms.
_OPUS_FRAME_SAMPLES = (
    *(480, 960, 1920, 2880) * 3,
    *(480, 960) * 2,
    *(120, 240, 480, 960) * 4,
)


@dataclass(frozen=True)
class Muxing:
    """How one codec is stored: the container format, the file extension, and the muxer's options."""

    format: str
    extension: str
    options: dict[str, str]


_WEBM = {"cluster_time_limit": "1000", "flush_packets": "1"}
_FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
MUXINGS = {
    "audio/opus": Muxing("webm", "webm", _WEBM),
    "video/vp8": Muxing("webm", "webm", _WEBM),
    "video/h264": Muxing("mp4", "mp4", _FRAGMENTED_MP4),
}


def muxing(mime_type: str) -> Muxing | None:
    """How packets of this codec (a MIME type such as "audio/opus") are stored; None if they cannot be."""
    return MUXINGS.get(mime_type.lower())


def codec_name(mime_type: str) -> str:
    """The codec's short name for the manifest: "opus", "vp8", "h264"."""
    return mime_type.split("/")[-1].lower()


# --- codec bitstream facts (pure) ----------------------------------------------------------------------------


def opus_head(channels: int) -> bytes:
    """The Opus identification header (RFC 7845 §5.1) a WebM file carries as CodecPrivate.

    Pre-skip is 0: RTP carries no encoder delay, and the packets' timestamps are the sender's timeline as
    is; a pre-skip would shift every file by a delay we cannot know.
    """
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 0, OPUS_SAMPLE_RATE, 0, 0)


def opus_samples(data: bytes) -> int:
    """How many 48 kHz samples an Opus packet decodes to (RFC 6716 §3.1); 0 if it is not a valid packet."""
    if not data:
        return 0
    toc = data[0]
    per_frame = _OPUS_FRAME_SAMPLES[toc >> 3]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    elif len(data) >= 2:
        frames = data[1] & 0x3F
    else:
        return 0
    samples = per_frame * frames
    return samples if samples <= 5760 else 0  # more than 120 ms is invalid (§3.2.5)


def opus_is_stereo(data: bytes) -> bool:
    """Whether an Opus packet codes two channels (the TOC's `s` bit)."""
    return bool(data) and bool(data[0] & 0x04)


def vp8_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame's header (RFC 6386 §9.1); None for an inter frame."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return width & 0x3FFF, height & 0x3FFF


def h264_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height of an H264 access unit with its parameter sets, by decoding it once (parsing the
    SPS cropping rules by hand is not worth it for one call per file)."""
    decoder = av.CodecContext.create("h264", "r")
    try:
        frames = [*decoder.decode(av.Packet(data)), *decoder.decode(None)]
    except av.FFmpegError:
        return None
    if not frames:
        return None
    return frames[0].width, frames[0].height


@functools.cache
def _opus_template() -> Stream:
    """An Opus stream to copy into new files: a stream added from a template is muxed without opening an
    encoder, and (unlike one without a codec context) lets us set the OpusHead WebM requires."""
    with _template_lock:
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="webm") as writer:
            stream = writer.add_mux_stream("opus", rate=OPUS_SAMPLE_RATE)
            packet = av.Packet(b"\xf8\xff\xfe")  # one 20 ms CELT frame of silence
            packet.pts, packet.time_base, packet.stream = 0, OPUS_TIME_BASE, stream
            writer.mux(packet)
        buffer.seek(0)
        reader = av.open(buffer, "r")
        _template_owners.append(reader)  # the stream lives as long as its container
        return reader.streams.audio[0]


_template_lock = threading.Lock()
_template_owners: list[InputContainer] = []


# --- one file ------------------------------------------------------------------------------------------------


class PassthroughFile:
    """One track's packets in one file, from `first` (a keyframe for video) until `close()`.

    Keeps what the manifest needs: where the file's time 0 lies on the wall clock (`origin_wall_s`), and
    how long it is (`duration_s`).
    """

    def __init__(self, path: Path, mime_type: str, first: EncodedFrame) -> None:
        found = muxing(mime_type)
        if found is None:
            raise ValueError(f"{mime_type} cannot be stored without transcoding")
        self.path = path
        self.mime_type = mime_type.lower()
        self.kind = self.mime_type.split("/")[0]
        self.time_base = first.time_base
        self.first_pts = first.pts
        self.end_pts = first.pts  # where the last written packet ends (its pts plus its duration)
        self.origin_wall_s = first.wall_time_s
        self.packets = 0
        self.skipped = 0
        # Video: the latest packet and its pts waits for the next one, which says how long it lasts.
        self._held: tuple[av.Packet, int] | None = None
        self._last_pts: int | None = None
        self.container: OutputContainer = av.open(str(path), "w", format=found.format, options=found.options)
        self.stream = self._add_stream(first)

    @property
    def duration_s(self) -> float:
        return float((self.end_pts - self.first_pts) * self.time_base)

    def write(self, frame: EncodedFrame) -> bool:
        """Add one packet at its own time; False when it was left out (not after the previous one)."""
        if self._last_pts is not None and frame.pts <= self._last_pts:
            # A muxer refuses timestamps that go back; a jitter buffer never hands out such a packet.
            self.skipped += 1
            return False
        self._last_pts = frame.pts
        pts = frame.pts - self.first_pts
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = pts
        packet.time_base = frame.time_base
        packet.stream = self.stream
        packet.is_keyframe = frame.keyframe
        # The latest packet's mapping is the best: it comes from the sender's latest clock report.
        self.origin_wall_s = frame.wall_time_s - float(pts * frame.time_base)
        if self.kind == "audio":
            samples = opus_samples(frame.data) or round(0.02 * OPUS_SAMPLE_RATE)
            duration = round(samples / OPUS_SAMPLE_RATE / frame.time_base)
            packet.duration = duration
            self.container.mux(packet)  # (muxing rebases the packet's times to the stream's time base)
            self.end_pts = frame.pts + duration
        else:
            self._release(next_pts=pts)
            self._held = (packet, pts)
        self.packets += 1
        return True

    def close(self) -> int:
        """Finish the file (duration and index written); its size in bytes."""
        self._release(next_pts=None)
        self.container.close()
        return self.path.stat().st_size

    def _release(self, next_pts: int | None) -> None:
        """Mux the held video packet, now that the next one (or the end) says how long it lasts."""
        if self._held is None:
            return
        packet, pts = self._held
        self._held = None
        if next_pts is not None:
            duration = next_pts - pts
        else:
            duration = round(pts / (self.packets - 1)) if self.packets > 1 else 0  # an average frame
        packet.duration = duration
        self.container.mux(packet)
        self.end_pts = self.first_pts + pts + duration

    def _add_stream(self, first: EncodedFrame) -> Stream:
        if self.mime_type == "audio/opus":
            stream = self.container.add_stream_from_template(_opus_template())
            channels = 2 if opus_is_stereo(first.data) else 1
            stream.codec_context.extradata = opus_head(channels)
            stream.codec_context.layout = "stereo" if channels == 2 else "mono"
            return stream
        if self.mime_type == "video/vp8":
            size = vp8_dimensions(first.data)
        else:
            size = h264_dimensions(first.data)
        if size is None:
            raise ValueError(f"the first {self.mime_type} packet is not a keyframe with its dimensions")
        stream = self.container.add_mux_stream(codec_name(self.mime_type), width=size[0], height=size[1])
        stream.time_base = first.time_base
        return stream
