"""Encoding a composite once, for every output, with PyAV (recordings.md §9.3, §9.5, §9.6; design.md "A
recording's path").

`CompositeEncoder` encodes the composite picture (H.264, VP8 or VP9) and the mixed audio (AAC or Opus) once and
hands a copy of every packet to each of its outputs (`recorder/outputs/`): the spool file, the interactive HLS
segments, an RTMP stream. The encoders live in a container of FFmpeg's "null" format, which only gives them
streams for the outputs to copy their codec parameters from. `AudioFileEncoder` writes the mix alone to its
own crash-safe spool file (M4A, MP3 or Ogg Opus), a different codec from the composite's audio.

Timestamps are seconds on the recording's media timeline (0 = its start, paused spans already removed by the
caller): the encoder writes what it is given at those times and never looks at a clock, so a caller that
continues its timestamps after a pause gets a file without a gap. Video is placed on the 30 fps grid; audio
must continue where the previous block ended — small jitter is absorbed, a gap is filled with silence and an
overlap is dropped, so the audio track always stays aligned with the timeline.

Live outputs (RTMP) also get the pause: while paused, `write_pause()` encodes a black frame per tick and sends
silence, on a stream timeline that goes on through the pause; recording outputs never see those packets, and
the first real frame after them is a keyframe, so the file decodes as if they had never been.

Neither class is thread-safe: one thread owns an encoder and makes every call, `close()` included (closing a
container while another thread writes to it can crash the process inside FFmpeg). Every call blocks for the
encoding work (the codecs release the GIL meanwhile), so call them from a worker thread, not the event loop.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
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

from recordkit.recorder.outputs import Output, copy_packet
from recordkit.recorder.outputs.file import FileOutput, open_spool_file
from recordkit.recorder.plan import AudioCodec, AudioFile, AudioPlan, CompositeFile, VideoCodec, VideoPlan

log = logging.getLogger(__name__)

# Seconds from one keyframe to the next, on media time: each fragment of the spool file and each HLS segment
# starts with one, so a crash loses at most that much of the picture.
KEYFRAME_S = 1
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
_AVCOL_SPC_SMPTE170M = 6  # FFmpeg's AVColorSpace for BT.601
_AVCOL_RANGE_MPEG = 1  # limited ("TV") range


class EncoderClosed(RuntimeError):
    """A write after `close()`: the file is finished."""


class _AudioTrack:
    """An audio encoder fed int16 blocks at timeline positions, encoded in the codec's own frame size."""

    def __init__(self, container: OutputContainer, plan: AudioPlan, emit: Callable[[list[av.Packet]], None]) -> None:
        codec, self._format = _AUDIO_ENCODERS[plan.codec]
        self._plan = plan
        self._emit = emit
        self.stream: AudioStream = container.add_stream(codec, rate=plan.sample_rate, layout=plan.layout)
        self.stream.codec_context.format = self._format
        self.stream.codec_context.bit_rate = _AUDIO_BITRATE[plan.codec][plan.channels - 1]
        if plan.codec is AudioCodec.AAC:
            # FFmpeg's documentation: "worse with low bitrates (less than 64kbps), but is better and much faster
            # at higher bitrates" than the default twoloop; ours are 64 kb/s per channel. Half the CPU (bench/README).
            self.stream.codec_context.options = {"aac_coder": "fast"}
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
        self._emit(self.stream.encode(None))

    def _encode(self, block: np.ndarray) -> None:
        frame = _audio_frame(block, self._format, self._plan.layout)
        frame.sample_rate = self._plan.sample_rate
        frame.pts = self._encoded
        frame.time_base = Fraction(1, self._plan.sample_rate)
        self._encoded += block.shape[1]
        self._emit(self.stream.encode(frame))


def _audio_frame(block: np.ndarray, sample_format: str, layout: str) -> av.AudioFrame:
    if sample_format == "fltp":
        return av.AudioFrame.from_ndarray(np.ascontiguousarray(block, np.float32) / 32768, format="fltp", layout=layout)
    if sample_format == "s16p":
        return av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="s16p", layout=layout)
    return av.AudioFrame.from_ndarray(block.T.reshape(1, -1), format="s16", layout=layout)  # packed: interleaved


def _add_video_stream(container: OutputContainer, plan: VideoPlan) -> VideoStream:
    pixels_per_s = plan.width * plan.height * plan.fps
    gop = _frames_per_keyframe(plan)
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
            # me=dia, crf 23.1: the cheapest within crf 23's bits and 0.3 dB of its Y-PSNR (bench/README.md).
            "crf": "23.1",
            "maxrate": str(maxrate),
            "bufsize": str(2 * maxrate),
            # A keyframe every second and nowhere else: fragments of exactly one second. P macroblocks stay
            # 16x16 (superfast's partitions): on the bots' 2-person 720p composite that took x264 from 9.6 to
            # 7.5 ms per frame for 4 % more bits and 0.16 dB less Y-PSNR.
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:partitions=i8x8,i4x4:me=dia",
            # The frame after a pause's black frames (sent to live outputs only) must start afresh: an IDR.
            "forced-idr": "1",
        }
    else:
        vp9 = plan.codec is VideoCodec.VP9
        stream = container.add_stream("libvpx-vp9" if vp9 else "libvpx", rate=plan.fps)
        stream.codec_context.bit_rate = round(pixels_per_s * _VPX_BPP[plan.codec])
        stream.codec_context.gop_size = gop
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


def _frames_per_keyframe(plan: VideoPlan) -> int:
    """The GOP: frames from one keyframe to the next."""
    return plan.fps * KEYFRAME_S


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


class CompositeEncoder:
    """Encodes the composite (video + mixed audio) once and hands every packet to each of its outputs.

    Each output is opened (a file's header on disk) when the constructor returns. `first_packet_at_s`
    (time.monotonic()) is when the first encoded packet went to the recording outputs: the moment the recording
    can be called RECORDING. A recording output's failure is raised to the caller (the recording's file ends
    there); a live output's failure only ends that output.
    """

    def __init__(self, plan: CompositeFile, outputs: Sequence[Output]) -> None:
        self.plan = plan
        self._recording = [output for output in outputs if not output.live]
        self._live = [output for output in outputs if output.live]
        self._encoders = av.open(os.devnull, "w", format="null")
        try:
            self._video = _add_video_stream(self._encoders, plan.video)
            self._audio = _AudioTrack(self._encoders, plan.audio, self._send_audio)
            for stream in (self._video, self._audio.stream):
                # Codec parameters in the header, not in the stream: MP4, FLV and MPEG-TS all take them so.
                stream.codec_context.flags |= av.codec.context.Flags.global_header
            self._encoders.start_encoding()
            for output in (*self._recording, *self._live):
                output.open(self._video, self._audio.stream)
        except BaseException:
            self._close_outputs()
            raise
        self._silence = _silent_packet(self._audio.stream) if self._live else None
        self._time_base = Fraction(1, plan.video.fps)
        self._frames: dict[int, tuple[int | None, float]] = {}  # stream index → (media index or None, wall s)
        self._last_index: int | None = None  # media index of the last real frame
        self._stream_index = -1  # of the last frame encoded, real or black
        self._pause_frames = 0  # black frames encoded so far: stream index − media index
        self._pause_samples = 0  # silence sent so far: live audio pts − media audio pts
        self._audio_end = 0  # media pts where the next real audio packet starts
        self._keyframe_due = False
        self._reformatter = VideoReformatter()
        self._closed = False
        self.first_packet_at_s: float | None = None
        self.frames_dropped = 0

    @classmethod
    def for_file(cls, plan: CompositeFile, path: Path) -> CompositeEncoder:
        """An encoder whose one output is the spool file at `path`."""
        return cls(plan, [FileOutput(plan.container, path)])

    @property
    def written_s(self) -> float:
        """Media time written so far (the later of the video's and the audio's end), seconds."""
        video_s = 0.0 if self._last_index is None else (self._last_index + 1) / self.plan.video.fps
        return max(video_s, self._audio.written_s)

    @property
    def live(self) -> bool:
        """Whether a live output streams the composite."""
        return bool(self._live)

    def needs_frame(self, pts_s: float) -> bool:
        """Whether a frame at media time `pts_s` must be written even if the picture has not changed: the first
        one, the first of each second (a keyframe: each fragment and segment starts with one, so a crash
        loses at most a second), and every one while a live output streams (players want a steady rate)."""
        if self._last_index is None or self._live:
            return True
        gop = _frames_per_keyframe(self.plan.video)
        return round(pts_s * self.plan.video.fps) // gop > self._last_index // gop

    def write_video(self, frame: av.VideoFrame, pts_s: float, wall_s: float) -> None:
        """Encode a composite frame shown from media time `pts_s` until the next one, captured at Unix time
        `wall_s` in the meeting.

        The frame is placed on the 30 fps grid; one landing on or before the previous frame's slot is dropped
        (counted in `frames_dropped`). The first frame is shown from time 0 whatever its time, so the video
        starts with the audio. A frame that is not yuv420p at the output size is converted.
        """
        self._check_open()
        index = 0 if self._last_index is None else round(pts_s * self.plan.video.fps)
        if self._last_index is not None and index <= self._last_index:
            self.frames_dropped += 1
            return
        # A keyframe at each whole second of media time even when frames were dropped (x264 counts frames):
        # fragments and HLS segments then start where they should.
        gop = _frames_per_keyframe(self.plan.video)
        new_gop = self._last_index is not None and index // gop > self._last_index // gop
        self._last_index = index
        if new_gop or self._keyframe_due or any(output.keyframe_wanted for output in self._live):
            frame.pict_type = av.video.frame.PictureType.I
            self._keyframe_due = False
            for output in self._live:
                output.keyframe_wanted = False
        self._encode_video(frame, index + self._pause_frames, index, wall_s)

    def write_audio(self, samples: np.ndarray, pts_s: float) -> None:
        """Encode mixed audio, int16 shaped (channels, n), whose first sample is at media time `pts_s`."""
        self._check_open()
        self._audio.write(samples, pts_s)

    def write_pause(self, wall_s: float) -> None:
        """One tick of a pause: a black frame and its silence for the live outputs (nothing without any)."""
        self._check_open()
        if not self._live or self._last_index is None:
            return
        self._pause_frames += 1
        self._keyframe_due = True
        black = self._black_frame()
        if any(output.keyframe_wanted for output in self._live):
            black.pict_type = av.video.frame.PictureType.I
            for output in self._live:
                output.keyframe_wanted = False
        self._encode_video(black, self._stream_index + 1, None, wall_s)
        assert self._silence is not None
        frame_size = self._audio.stream.codec_context.frame_size
        sample_rate = self.plan.audio.sample_rate
        # Silence keeps up with the black frames, so the stream's sound stays with its picture after the pause.
        while self._pause_samples < self._pause_frames * sample_rate / self.plan.video.fps:
            silence = copy_packet(self._silence)
            silence.pts = silence.dts = self._audio_end + self._pause_samples
            self._pause_samples += frame_size
            self._to_live(silence)

    def close(self) -> None:
        """Drain the codecs and close every output, each whatever the others do (a no-op when closed already).
        Raises the first recording output's failure, after all were closed."""
        if self._closed:
            return
        self._closed = True
        try:
            self._send_video(self._video.encode(None))
            self._audio.flush()
        finally:
            self._close_outputs()

    def _encode_video(self, frame: av.VideoFrame, stream_index: int, media_index: int | None, wall_s: float) -> None:
        video = self.plan.video
        if frame.format.name != "yuv420p" or frame.width != video.width or frame.height != video.height:
            frame = self._reformatter.reformat(frame, width=video.width, height=video.height, format="yuv420p")
        frame.pts, frame.time_base = stream_index, self._time_base
        self._stream_index = stream_index
        self._frames[stream_index] = (media_index, wall_s)
        self._send_video(self._video.encode(frame))

    def _send_video(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            media_index, wall_s = self._frames.pop(packet.pts)
            self._to_live(packet, wall_s)
            if media_index is None:
                continue  # a pause's black frame: for the live outputs only
            shift = packet.pts - media_index
            for output in self._recording:
                copy = copy_packet(packet)
                copy.pts, copy.dts = packet.pts - shift, packet.dts - shift
                output.write_video(copy, wall_s)
            self._first_packet_sent()

    def _send_audio(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            for output in self._recording:
                output.write_audio(copy_packet(packet))
            if self._live:
                live = copy_packet(packet)
                live.pts, live.dts = packet.pts + self._pause_samples, packet.dts + self._pause_samples
                self._to_live(live)
            self._audio_end = packet.pts + packet.duration
            self._first_packet_sent()

    def _to_live(self, packet: av.Packet, video_wall_s: float | None = None) -> None:
        """Send a copy of an audio packet, or of a video one shown at `video_wall_s`, to every live output; one
        that fails is dropped, and the recording goes on without it."""
        for output in list(self._live):
            try:
                if video_wall_s is None:
                    output.write_audio(copy_packet(packet))
                else:
                    output.write_video(copy_packet(packet), video_wall_s)
            except Exception:
                log.exception("live output %s failed; the recording goes on without it", output.name)
                self._live.remove(output)
                _close_quietly(output)

    def _first_packet_sent(self) -> None:
        if self.first_packet_at_s is None and self._recording:
            self.first_packet_at_s = time.monotonic()

    def _black_frame(self) -> av.VideoFrame:
        video = self.plan.video
        planes = np.full(video.width * video.height * 3 // 2, 128, np.uint8)
        planes[: video.width * video.height] = 16  # limited-range black
        return av.VideoFrame.from_ndarray(planes.reshape(-1, video.width), format="yuv420p")

    def _check_open(self) -> None:
        if self._closed:
            raise EncoderClosed("the encoder was closed")

    def _close_outputs(self) -> None:
        failure: BaseException | None = None
        for output in (*self._recording, *self._live):
            try:
                output.close()
            except Exception as error:
                if output.live:
                    log.exception("closing live output %s failed", output.name)
                else:
                    failure = failure or error
        self._encoders.close()
        if failure is not None:
            raise failure

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AudioFileEncoder:
    """Encodes the mixed audio alone to a crash-safe spool file (M4A, MP3 or Ogg Opus)."""

    def __init__(self, plan: AudioFile, spool_path: Path) -> None:
        self.plan = plan
        self._container = open_spool_file(plan.container, spool_path)
        try:
            self._audio = _AudioTrack(self._container, plan.audio, self._mux)
            self._container.start_encoding()
        except BaseException:
            self._container.close()
            raise
        self._closed = False
        self.first_packet_at_s: float | None = None

    @property
    def written_s(self) -> float:
        """Media time written so far, seconds."""
        return self._audio.written_s

    def write_audio(self, samples: np.ndarray, pts_s: float) -> None:
        """Encode mixed audio, int16 shaped (channels, n), whose first sample is at `pts_s`."""
        if self._closed:
            raise EncoderClosed("the encoder was closed")
        self._audio.write(samples, pts_s)

    def close(self) -> None:
        """Drain the codec and finish the file (a no-op when closed already)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._audio.flush()
        finally:
            self._container.close()

    def _mux(self, packets: list[av.Packet]) -> None:
        if packets:
            self._container.mux(packets)
            if self.first_packet_at_s is None:
                self.first_packet_at_s = time.monotonic()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _silent_packet(audio: AudioStream) -> av.Packet:
    """One encoded frame of digital silence in the composite's audio format, for live outputs while paused.

    Encoded once, by an encoder of its own with the same parameters: the composite's encoder never sees the
    pause, so the file's sound on both sides of it stays exactly as it was mixed.
    """
    context = audio.codec_context
    silence = av.CodecContext.create(context.codec.name, "w")
    silence.sample_rate, silence.layout, silence.format = context.sample_rate, context.layout, context.format
    silence.bit_rate, silence.time_base = context.bit_rate, Fraction(1, context.sample_rate)
    silence.flags |= av.codec.context.Flags.global_header
    silence.open()
    packets: list[av.Packet] = []
    zeros = np.zeros((context.layout.nb_channels, context.frame_size), np.int16)
    for index in range(4):  # past the codec's priming: a steady-state frame
        frame = _audio_frame(zeros, context.format.name, context.layout.name)
        frame.sample_rate, frame.time_base = context.sample_rate, silence.time_base
        frame.pts = index * context.frame_size
        packets += silence.encode(frame)
    packet = packets[-1]
    packet.duration = context.frame_size
    return packet


def _close_quietly(output: Output) -> None:
    try:
        output.close()
    except Exception:
        log.exception("closing %s failed", output.name)
