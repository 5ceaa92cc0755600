"""Encoding a recording to its spool files with PyAV (recordings.md §9.3; design.md "A recording's path").

`CompositeEncoder` writes the composite picture and the mixed audio to fragmented MP4 (H.264 + AAC-LC) or WebM
(VP8/VP9 + Opus); `AudioFileEncoder` writes the mix alone to M4A (AAC), MP3 or Ogg Opus. Every file is written
so that a process killed mid-recording leaves a playable file holding all but its last second or so:

* MP4/M4A are fragmented (`empty_moov`: the header comes first and never changes; each fragment is
  self-contained). Video fragments start at keyframes, one per second (GOP of 30 at 30 fps).
* WebM clusters are limited to one second; a cluster reaches the file when it is complete.
* MP3 frames and Ogg pages are playable as they stand.
* `flush_packets` hands every completed fragment, cluster or page to the OS at once, so a kill (which loses
  only the process, not the page cache) leaves it in the file.

Timestamps are seconds on the recording's media timeline (0 = its start, paused spans already removed by the
caller): the encoder writes what it is given at those times and never looks at a clock, so a caller that
continues its timestamps after a pause gets a file without a gap. Video is placed on the 30 fps grid; audio
must continue where the previous block ended — small jitter is absorbed, a gap is filled with silence and an
overlap is dropped, so the audio track always stays aligned with the timeline.

Neither class is thread-safe: one thread owns an encoder and makes every call, `close()` included (closing a
container while another thread writes to it can crash the process inside FFmpeg). Every call blocks for the
encoding work (the codecs release the GIL meanwhile), so call them from a worker thread, not the event loop.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Self

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from recordkit.recorder.plan import AudioCodec, AudioFile, AudioPlan, CompositeFile, Container, VideoCodec, VideoPlan

# Audio that starts within this of where the previous block ended continues it as if contiguous.
AUDIO_TOLERANCE_S = 0.001
# Bits per pixel per frame at the output size: ≈ 2.8 Mb/s at 720p30 for H.264 (the cap of its constant-quality
# mode, and the target of VP8's rate control), less for VP9, which needs fewer bits for the same picture.
_H264_MAX_BPP = 0.1
_VPX_BPP = {VideoCodec.VP8: 0.08, VideoCodec.VP9: 0.06}
_AUDIO_BITRATE = {  # (mono, stereo)
    AudioCodec.AAC: (64_000, 128_000),
    AudioCodec.MP3: (64_000, 128_000),
    AudioCodec.OPUS: (48_000, 96_000),
}
# (FFmpeg encoder, the sample format we feed it): AAC only takes float planar; the others take int16 as is.
_AUDIO_ENCODERS = {
    AudioCodec.AAC: ("aac", "fltp"),
    AudioCodec.MP3: ("libmp3lame", "s16p"),
    AudioCodec.OPUS: ("libopus", "s16"),
}
_FRAGMENTED_MP4 = "empty_moov+default_base_moof"
_MUXERS: dict[Container, tuple[str, dict[str, str]]] = {
    Container.MP4: ("mp4", {"movflags": f"frag_keyframe+{_FRAGMENTED_MP4}", "frag_duration": "1000000"}),
    # Audio packets are all keyframes, so an audio-only file is cut by duration alone.
    Container.M4A: ("ipod", {"movflags": _FRAGMENTED_MP4, "frag_duration": "1000000"}),
    Container.WEBM: ("webm", {"cluster_time_limit": "1000"}),
    Container.MP3: ("mp3", {}),
    Container.OGG: ("ogg", {"page_duration": "1000000"}),
}


_AVCOL_SPC_SMPTE170M = 6  # FFmpeg's AVColorSpace for BT.601
_AVCOL_RANGE_MPEG = 1  # limited ("TV") range


class EncoderClosed(RuntimeError):
    """A write after `close()`: the file is finished."""


class _Output:
    """The container of one spool file: the one owner that opens it, muxes into it and closes it."""

    def __init__(self, container: Container, spool_path: Path) -> None:
        muxer, options = _MUXERS[container]
        self.container: OutputContainer = av.open(
            str(spool_path), "w", format=muxer, options={**options, "flush_packets": "1"}
        )
        self.closed = False
        self.first_packet_at_s: float | None = None

    def mux(self, packets: list[av.Packet]) -> None:
        if packets:
            self.container.mux(packets)
            if self.first_packet_at_s is None:
                self.first_packet_at_s = time.monotonic()

    def check_open(self) -> None:
        if self.closed:
            raise EncoderClosed("the encoder was closed")

    def close(self) -> None:
        self.closed = True
        self.container.close()


class _AudioTrack:
    """An audio stream fed int16 blocks at timeline positions, encoded in the codec's own frame size."""

    def __init__(self, output: _Output, plan: AudioPlan) -> None:
        codec, self._format = _AUDIO_ENCODERS[plan.codec]
        self._plan = plan
        self._output = output
        self.stream: AudioStream = output.container.add_stream(codec, rate=plan.sample_rate, layout=plan.layout)
        self.stream.codec_context.format = self._format
        self.stream.codec_context.bit_rate = _AUDIO_BITRATE[plan.codec][plan.channels - 1]
        self._tolerance = round(AUDIO_TOLERANCE_S * plan.sample_rate)
        self._pending = np.zeros((plan.channels, 0), np.int16)
        self._next = 0  # timeline sample index where the next block is expected
        self._encoded = 0  # samples handed to the codec so far (the pts of the next codec frame)

    @property
    def written_s(self) -> float:
        """Media time covered so far, seconds."""
        return self._next / self._plan.sample_rate

    def write(self, samples: np.ndarray, pts_s: float) -> None:
        if samples.ndim != 2 or samples.shape[0] != self._plan.channels or samples.dtype != np.int16:
            raise ValueError(f"audio must be int16 shaped (channels={self._plan.channels}, n), not {samples.shape}")
        start = round(pts_s * self._plan.sample_rate)
        if start > self._next + self._tolerance:
            # A gap in the input: silence keeps what follows at its time.
            samples = np.concatenate([np.zeros((self._plan.channels, start - self._next), np.int16), samples], axis=1)
        elif start < self._next - self._tolerance:
            samples = samples[:, self._next - start :]  # overlaps what was written: only the new part counts
        self._next += samples.shape[1]
        self._pending = np.concatenate([self._pending, samples], axis=1)
        frame_size = self.stream.codec_context.frame_size
        whole = self._pending.shape[1] // frame_size * frame_size
        for offset in range(0, whole, frame_size):
            self._encode(self._pending[:, offset : offset + frame_size])
        self._pending = self._pending[:, whole:]

    def flush(self) -> None:
        if self._pending.shape[1]:
            self._encode(self._pending)  # every codec here accepts a short last frame
            self._pending = self._pending[:, :0]
        self._output.mux(self.stream.encode(None))

    def _encode(self, block: np.ndarray) -> None:
        if self._format == "fltp":
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block, np.float32) / 32768, format="fltp", layout=self._plan.layout
            )
        elif self._format == "s16p":
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="s16p", layout=self._plan.layout)
        else:  # packed s16: samples interleaved in one row
            frame = av.AudioFrame.from_ndarray(block.T.reshape(1, -1), format="s16", layout=self._plan.layout)
        frame.sample_rate = self._plan.sample_rate
        frame.pts = self._encoded
        frame.time_base = Fraction(1, self._plan.sample_rate)
        self._encoded += block.shape[1]
        self._output.mux(self.stream.encode(frame))


def _add_video_stream(container: OutputContainer, plan: VideoPlan) -> VideoStream:
    pixels_per_s = plan.width * plan.height * plan.fps
    if plan.codec is VideoCodec.H264:
        stream = container.add_stream("libx264", rate=plan.fps)
        maxrate = round(pixels_per_s * _H264_MAX_BPP)
        stream.codec_context.options = {
            # design.md: veryfast alone holds the first packet back ≈ 0.4 s; zerolatency gets it out at once
            # (no lookahead, no B-frames).
            "preset": "veryfast",
            "tune": "zerolatency",
            # High profile: every browser's H.264 decoder has it, and it compresses better than Main/Baseline.
            "profile": "high",
            "crf": "23",
            "maxrate": str(maxrate),
            "bufsize": str(2 * maxrate),
            # A keyframe every second and nowhere else: fragments of exactly one second. P macroblocks stay
            # 16x16 (superfast's partitions): on the bots' 2-person 720p composite that took x264 from 9.6 to
            # 7.5 ms per frame for 4 % more bits and 0.16 dB less Y-PSNR.
            "x264-params": f"keyint={plan.fps}:min-keyint={plan.fps}:scenecut=0:partitions=i8x8,i4x4",
        }
    else:
        vp9 = plan.codec is VideoCodec.VP9
        stream = container.add_stream("libvpx-vp9" if vp9 else "libvpx", rate=plan.fps)
        stream.codec_context.bit_rate = round(pixels_per_s * _VPX_BPP[plan.codec])
        stream.codec_context.gop_size = plan.fps
        stream.codec_context.options = {
            "deadline": "realtime",
            # The fastest realtime speed of each: VP8 goes to 16, VP9 to 8 (needs row-mt to use threads well).
            "cpu-used": "8" if vp9 else "16",
            "lag-in-frames": "0",
            **({"row-mt": "1"} if vp9 else {}),
        }
    stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, "yuv420p"
    stream.codec_context.time_base = Fraction(1, plan.fps)
    stream.codec_context.thread_count = _threads(plan)
    # Tag the pictures BT.601 limited range: what swscale converts RGB to (watermarks) and what VP8 decoders
    # produce. Untagged, players guess, and some guess BT.709 for HD sizes.
    stream.codec_context.colorspace = _AVCOL_SPC_SMPTE170M
    stream.codec_context.color_range = _AVCOL_RANGE_MPEG
    return stream


def _threads(plan: VideoPlan) -> int:
    """Encoder threads, measured on a 2-core machine at 720p30 (ms of CPU per frame, 1 thread → 2 → auto).

    x264 veryfast: 7.9 → 9.2 → 9.6, so one thread, the cheapest and several times real time, up to 720p; two
    above it so 1920×1920 (4× the pixels) stays real time. VP8: 5 → 15 → 35 (its threads spin while waiting):
    always one. VP9 (row-mt): 16 → 16.5 ms with half the wall time, so two: one alone is only 2× real time.
    """
    if plan.codec is VideoCodec.VP9:
        return 2
    if plan.codec is VideoCodec.VP8:
        return 1
    return 1 if plan.width * plan.height <= 1280 * 720 else 2


class _SpoolFileEncoder:
    """What both encoders share: the spool file, its mixed-audio track, and closing it once."""

    _output: _Output
    _audio: _AudioTrack

    @property
    def first_packet_at_s(self) -> float | None:
        """Monotonic time at which the first encoded packet went to the file, or None before that."""
        return self._output.first_packet_at_s

    def write_audio(self, samples: np.ndarray, pts_s: float) -> None:
        """Encode mixed audio, int16 shaped (channels, n), whose first sample is at `pts_s`."""
        self._output.check_open()
        self._audio.write(samples, pts_s)

    def close(self) -> None:
        """Drain the codecs and finish the file (a no-op when closed already)."""
        if self._output.closed:
            return
        try:
            self._drain()
        finally:
            self._output.close()

    def _drain(self) -> None:
        self._audio.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class CompositeEncoder(_SpoolFileEncoder):
    """Encodes the composite (video + mixed audio) to a crash-safe spool file.

    The file's header is on disk when the constructor returns; the first fragment follows one second of
    media later. `first_packet_at_s` (time.monotonic()) is when the first encoded packet was handed to the
    file: the moment the recording can be called RECORDING.
    """

    def __init__(self, plan: CompositeFile, spool_path: Path) -> None:
        self.plan = plan
        self._output = _Output(plan.container, spool_path)
        try:
            self._video = _add_video_stream(self._output.container, plan.video)
            self._audio = _AudioTrack(self._output, plan.audio)
            self._output.container.start_encoding()  # opens the codecs and writes the header
        except BaseException:
            self._output.close()
            raise
        self._time_base = Fraction(1, plan.video.fps)
        self._last_index: int | None = None
        self._reformatter = VideoReformatter()
        self.frames_dropped = 0

    @property
    def written_s(self) -> float:
        """Media time written so far (the later of the video's and the audio's end), seconds."""
        video_s = 0.0 if self._last_index is None else (self._last_index + 1) / self.plan.video.fps
        return max(video_s, self._audio.written_s)

    def write_video(self, frame: av.VideoFrame, pts_s: float) -> None:
        """Encode a composite frame shown from `pts_s` until the next one.

        The frame is placed on the 30 fps grid; one landing on or before the previous frame's slot is dropped
        (counted in `frames_dropped`). The first frame is shown from time 0 whatever its time, so the video
        starts with the audio. A frame that is not yuv420p at the output size is converted. Sets the frame's
        `pts` and `time_base`.
        """
        self._output.check_open()
        index = 0 if self._last_index is None else round(pts_s * self.plan.video.fps)
        if self._last_index is not None and index <= self._last_index:
            self.frames_dropped += 1
            return
        video = self.plan.video
        if frame.format.name != "yuv420p" or frame.width != video.width or frame.height != video.height:
            frame = self._reformatter.reformat(frame, width=video.width, height=video.height, format="yuv420p")
        self._last_index = index
        frame.pts, frame.time_base = index, self._time_base
        self._output.mux(self._video.encode(frame))

    def _drain(self) -> None:
        self._output.mux(self._video.encode(None))
        self._audio.flush()


class AudioFileEncoder(_SpoolFileEncoder):
    """Encodes the mixed audio alone to a crash-safe spool file (M4A, MP3 or Ogg Opus)."""

    def __init__(self, plan: AudioFile, spool_path: Path) -> None:
        self.plan = plan
        self._output = _Output(plan.container, spool_path)
        try:
            self._audio = _AudioTrack(self._output, plan.audio)
            self._output.container.start_encoding()
        except BaseException:
            self._output.close()
            raise

    @property
    def written_s(self) -> float:
        """Media time written so far, seconds."""
        return self._audio.written_s
