"""Join the segments of one recording into one file by copying their packets (issue 14, "Takeover").

When a recorder worker dies mid-recording another one continues the same recording in a new segment: a spool
file of its own (`outputs/file.py`), written by a new encoder of the same plan, whose time 0 sits at
`media_start_s` on the recording's timeline. At stop the segments become one file whose timeline matches the
wall clock:

* every segment's packets are copied, not re-encoded, shifted to its `media_start_s` (video and audio by the
  same amount, so they stay in sync);
* a gap between two segments is filled with the previous segment's last picture repeated at the plan's rate
  and silence, encoded by the recorder's own encoder classes with the plan (so its codec parameters are the
  segments'); the filler starts with a keyframe, and so does every segment;
* an overlap (both workers recorded the same instant) trims the end of the earlier segment at the later one's
  first packet: the later one starts with a keyframe, so nothing before it is needed, while cutting into the
  later one would have to wait up to a second for its next keyframe and show a frozen picture meanwhile;
* a segment whose codec parameters differ from what this process's encoder produces for the plan (another
  x264 build on the other worker, say) cannot share the file's one set of parameters: it is decoded and
  re-encoded with the plan, and a warning says so.

Two encoder instances of the same plan in one build give byte-identical extradata (H.264 avcC, AAC
AudioSpecificConfig, Opus head: measured), so the fallback is for mixed fleets, not the common case.

The fragmented MP4 spool shifts every packet by the AAC encoder's priming (1024 samples, 21.3 ms) but cannot
shift its first video sample, which it stretches back to 0 instead; each piece's first video packet is put
back one frame before its second, so the frame steps stay even where pieces meet.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer, OutputContainer
from av.stream import Stream

from recordkit.recorder.encoder import AudioFileEncoder, CompositeEncoder
from recordkit.recorder.outputs import copy_packet
from recordkit.recorder.plan import AudioFile, AudioPlan, CompositeFile
from recordkit.recorder.remux import FORMATS

log = logging.getLogger(__name__)

# Audio written to an encoder at once when filling a gap: a second, so memory stays bounded on a long gap.
_FILL_BLOCK_S = 1.0
# Within a tick of the MP4 video time base (1/15360 s): rounding, not a frame.
_HALF_TICK_S = 1 / 30720


@dataclass(frozen=True)
class Segment:
    """One spool file of a recording, complete or cut short by a kill, and where its time 0 belongs on the
    recording's timeline (0.0 for the first)."""

    path: Path
    media_start_s: float


@dataclass(frozen=True)
class Joined:
    """The joined file: its size in bytes, its duration, and the gap filled before each later segment (0.0
    when it followed at once or overlapped, or could not be read: its time is in the next one's gap)."""

    size: int
    duration_s: float
    gaps_s: list[float]


@dataclass(frozen=True)
class _Piece:
    """What the join needs to know of a file before copying it: where its first packets are (seconds of its
    own time) and its codec parameters."""

    first_video_s: float | None
    first_audio_s: float | None
    parameters: tuple[tuple[object, ...], ...]


def join_segments(segments: Sequence[Segment], out: Path, plan: CompositeFile | AudioFile) -> Joined:
    """Join `segments` (in timeline order) into one complete file at `out`, which may be the first segment's
    own path; `plan` is the plan the segments were recorded with (`OutputPlan.composite` for the video file,
    `OutputPlan.audio_file` for the audio file)."""
    if not segments:
        raise ValueError("nothing to join")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as work:
        joined = _Join(plan, Path(work))
        kept = [index for index, segment in enumerate(segments) if _readable(segment.path)]
        if not kept:
            raise ValueError("no segment can be read")
        paths = [joined.matching(segments[index].path) for index in kept]
        pieces = [_probe(path) for path in paths]
        gaps_s = [0.0] * (len(segments) - 1)
        target = Path(work) / f"joined.{plan.container.value}"
        with (
            av.open(str(paths[0])) as first,
            av.open(str(target), "w", format=FORMATS[f".{plan.container.value}"]) as output,
        ):
            joined.start(output, first)
            for position, (index, path, piece) in enumerate(zip(kept, paths, pieces, strict=True)):
                start_s = segments[index].media_start_s
                later = kept[position + 1] if position + 1 < len(kept) else None
                if later is None:
                    joined.copy(path, piece, start_s, start_s, None, None)
                    continue
                following, later_start_s = pieces[position + 1], segments[later].media_start_s
                next_video_s = _at(following.first_video_s, later_start_s)
                next_audio_s = _at(following.first_audio_s, later_start_s)
                joined.copy(path, piece, start_s, start_s, next_video_s, next_audio_s)
                gaps_s[later - 1] = joined.fill(next_video_s, next_audio_s)
        os.replace(target, out)
    return Joined(out.stat().st_size, joined.duration_s, gaps_s)


class _Join:
    """The output being written and where each of its streams ends so far."""

    def __init__(self, plan: CompositeFile | AudioFile, work: Path) -> None:
        self._plan = plan
        self._work = work
        self._fillers = 0  # files encoded here so far, for their names
        # What this process's encoder writes for the plan: a few milliseconds of silence and no picture.
        self._reference = _probe(self._encode_filler(None, 0, 0.0)).parameters
        self._streams: dict[str, Stream] = {}
        self._start_s: float | None = None
        self._video_end_s: float | None = None
        self._audio_end_s: float | None = None
        self._last_dts_s: dict[str, float] = {}
        # The video packets since the last keyframe written: the last picture is decoded from them.
        self._gop: list[av.Packet] = []

    def matching(self, path: Path) -> Path:
        """`path`, or a re-encoding of it with the plan when its codec parameters are not the plan's."""
        if _probe(path).parameters == self._reference:
            return path
        log.warning("%s: its codec parameters differ from this encoder's; re-encoding it", path.name)
        return self._reencode(path)

    @property
    def duration_s(self) -> float:
        """From the first packet's start to the last one's end, over both streams."""
        ends_s = [end_s for end_s in (self._video_end_s, self._audio_end_s) if end_s is not None]
        return 0.0 if self._start_s is None else round(max(ends_s) - self._start_s, 6)

    def start(self, output: OutputContainer, template: InputContainer) -> None:
        for stream in template.streams:
            if stream.type in ("video", "audio"):
                self._streams[stream.type] = output.add_stream_from_template(stream)
            if stream.type == "video":
                # Every piece has these codec parameters (`matching`), so one decoder decodes any of them.
                self._video_decoding = (stream.codec_context.name, stream.codec_context.extradata)
        self._output = output

    def copy(
        self,
        path: Path,
        piece: _Piece,
        video_shift_s: float,
        audio_shift_s: float,
        video_until_s: float | None,
        audio_until_s: float | None,
    ) -> None:
        """Copy `path`'s packets shifted by the given seconds, up to (not including) the given times."""
        with av.open(str(path)) as source:
            first_video = True
            for packet in source.demux():
                kind = packet.stream.type
                if packet.dts is None or packet.pts is None or kind not in self._streams or packet.is_corrupt:
                    continue
                time_base = packet.time_base
                if kind == "video" and first_video:
                    first_video = False
                    assert piece.first_video_s is not None
                    packet.pts = packet.dts = round(piece.first_video_s / time_base)
                shift_s = video_shift_s if kind == "video" else audio_shift_s
                start_s = float(packet.pts * time_base) + shift_s
                duration_s = float((packet.duration or 0) * time_base)
                if kind == "video":
                    if video_until_s is not None and start_s >= video_until_s - _HALF_TICK_S:
                        continue
                elif audio_until_s is not None and start_s + duration_s / 2 > audio_until_s:
                    continue  # mostly after where the next piece's sound starts
                elif self._audio_end_s is not None and start_s + duration_s / 2 < self._audio_end_s:
                    continue  # mostly before where the previous piece's sound ended (an encoder's priming)
                shift = round(shift_s / time_base)
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                dts_s = float(packet.dts * time_base)
                if kind in self._last_dts_s and dts_s <= self._last_dts_s[kind]:
                    continue
                self._last_dts_s[kind] = dts_s
                self._start_s = start_s if self._start_s is None else min(self._start_s, start_s)
                if kind == "video":
                    if packet.is_keyframe:
                        self._gop.clear()
                    self._gop.append(copy_packet(packet))
                    self._video_end_s = start_s + (duration_s or 1 / self._fps)
                else:
                    self._audio_end_s = start_s + duration_s
                packet.stream = self._streams[kind]
                self._output.mux(packet)

    def fill(self, next_video_s: float | None, next_audio_s: float | None) -> float:
        """Fill the time up to where the next piece starts with the last picture and silence; the gap filled."""
        video_gap_s = _gap(self._video_end_s, next_video_s)
        audio_gap_s = _gap(self._audio_end_s, next_audio_s)
        frames = round(video_gap_s * self._fps) if "video" in self._streams else 0
        if frames == 0 and audio_gap_s < 0.5 * self._audio_frame_s:
            return 0.0
        filler = self._encode_filler(self._last_picture() if frames else None, frames, audio_gap_s)
        piece = _probe(filler)
        video_shift_s = (self._video_end_s or 0.0) - (piece.first_video_s or 0.0)
        audio_shift_s = (self._audio_end_s or 0.0) - (piece.first_audio_s or 0.0)
        self.copy(filler, piece, video_shift_s, audio_shift_s, next_video_s, next_audio_s)
        return round(video_gap_s if "video" in self._streams else audio_gap_s, 3)

    @property
    def _fps(self) -> int:
        return self._plan.video.fps if isinstance(self._plan, CompositeFile) else 1

    @property
    def _audio_frame_s(self) -> float:
        """The longest audio frame of the codecs here (MP3's 1152 samples), as a tolerance."""
        return 1152 / self._plan.audio.sample_rate

    def _last_picture(self) -> av.VideoFrame:
        """The last picture written, decoded from its keyframe on; black when no picture was written yet."""
        frames: list[av.VideoFrame] = []
        if self._gop:
            name, extradata = self._video_decoding
            decoder = av.CodecContext.create(name, "r")
            decoder.extradata = extradata
            for packet in [*self._gop, None]:
                try:
                    frames += decoder.decode(packet)
                except av.FFmpegError as error:  # a packet cut short by the kill: the picture before it
                    log.info("the last picture's packet did not decode (%s)", error)
        if frames:
            return frames[-1]
        assert isinstance(self._plan, CompositeFile)
        video = self._plan.video
        planes = np.full(video.width * video.height * 3 // 2, 128, np.uint8)
        planes[: video.width * video.height] = 16  # limited-range black
        return av.VideoFrame.from_ndarray(planes.reshape(-1, video.width), format="yuv420p")

    def _encode_filler(self, picture: av.VideoFrame | None, frames: int, audio_s: float) -> Path:
        """A spool file written by the recorder's encoder for the plan: `picture` repeated `frames` times and
        silence for at least `audio_s` (one audio frame more, so the sound reaches the next piece)."""
        path = self._work / f"filler{self._fillers}.{self._plan.container.value}"
        self._fillers += 1
        audio = self._plan.audio
        samples_s = max(frames / self._fps, audio_s + self._audio_frame_s)
        if isinstance(self._plan, CompositeFile):
            with CompositeEncoder.for_file(self._plan, path) as encoder:
                written = 0.0
                for index in range(frames):
                    assert picture is not None
                    # The encoder marks the frames it makes keyframes: each write starts from no decision.
                    picture.pict_type = av.video.frame.PictureType.NONE
                    encoder.write_video(picture, index / self._fps, 0.0)
                    written = _write_silence(encoder, audio, written, min((index + 1) / self._fps, samples_s))
                _write_silence(encoder, audio, written, samples_s)
        else:
            with AudioFileEncoder(self._plan, path) as audio_encoder:
                _write_silence(audio_encoder, audio, 0.0, samples_s)
        return path

    def _reencode(self, path: Path) -> Path:
        """`path` decoded and encoded again with the plan, on its own timeline."""
        target = self._work / f"reencoded{self._fillers}.{self._plan.container.value}"
        self._fillers += 1
        audio = self._plan.audio
        resampler = av.AudioResampler(format="s16p", layout=audio.layout, rate=audio.sample_rate)
        encoder: CompositeEncoder | AudioFileEncoder
        if isinstance(self._plan, CompositeFile):
            encoder = CompositeEncoder.for_file(self._plan, target)
        else:
            encoder = AudioFileEncoder(self._plan, target)
        # The spool's own offset (module docstring): the new spool adds its own, and the encoder places its
        # first video frame at 0.
        offset_s = _probe(path).first_video_s or 0.0
        with encoder, av.open(str(path)) as source:
            kinds = ("video", "audio") if isinstance(encoder, CompositeEncoder) else ("audio",)
            streams = [stream for stream in source.streams if stream.type in kinds]
            try:
                for frame in source.decode(*streams):
                    if frame.pts is None or frame.time_base is None:
                        continue
                    at_s = float(frame.pts * frame.time_base) - offset_s
                    if isinstance(frame, av.VideoFrame):
                        assert isinstance(encoder, CompositeEncoder)
                        encoder.write_video(frame, at_s, 0.0)
                    elif isinstance(frame, av.AudioFrame):
                        for converted in resampler.resample(frame):
                            encoder.write_audio(converted.to_ndarray(), at_s)
                            at_s += converted.samples / audio.sample_rate
            except av.FFmpegError as error:  # a packet cut short by a kill: what came before it is kept
                log.warning("%s: decoding stopped early (%s)", path.name, error)
        return target


def _probe(path: Path) -> _Piece:
    """Where `path`'s first video and audio packets are and its codec parameters, from its first packets."""
    first: dict[str, float] = {}
    with av.open(str(path)) as source:
        parameters = tuple(_parameters(stream) for stream in source.streams if stream.type in ("video", "audio"))
        wanted = {stream.type for stream in source.streams if stream.type in ("video", "audio")}
        video_s: list[float] = []  # the first video packet's start, and the second's start less its duration
        for packet in source.demux():
            kind = packet.stream.type
            if packet.pts is None or packet.time_base is None or kind not in wanted:
                continue
            if kind == "video" and len(video_s) < 2:
                # The spool's first video sample is stretched back to 0 (module docstring): one frame before the
                # second is where it belongs (a second without a duration tells nothing).
                if not video_s or not packet.duration:
                    video_s.append(float(packet.pts * packet.time_base) if not video_s else video_s[0])
                else:
                    video_s.append(float((packet.pts - packet.duration) * packet.time_base))
                first["video"] = max(video_s)
            elif kind == "audio" and kind not in first:
                first[kind] = float(packet.pts * packet.time_base)
            if len(first) == len(wanted) and len(video_s) == (2 if "video" in wanted else 0):
                break
    return _Piece(first.get("video"), first.get("audio"), parameters)


def _parameters(stream: Stream) -> tuple[object, ...]:
    """What must be equal for two streams' packets to share one stream of the joined file."""
    context = stream.codec_context
    extradata = bytes(context.extradata or b"")
    if stream.type == "video":
        return ("video", context.name, context.width, context.height, extradata)
    return ("audio", context.name, context.sample_rate, context.layout.nb_channels, extradata)


def _readable(path: Path) -> bool:
    """Whether `path` is a media file at all: a worker killed before its header was written leaves none."""
    try:
        _probe(path)
    except (av.FFmpegError, OSError) as error:
        log.warning("%s: not a readable segment (%s); joining without it", path.name, error)
        return False
    return True


def _write_silence(encoder: CompositeEncoder | AudioFileEncoder, plan: AudioPlan, from_s: float, to_s: float) -> float:
    """Silence from `from_s` up to `to_s` in blocks of at most `_FILL_BLOCK_S`; where it ends."""
    at_s = from_s
    while to_s - at_s > 1 / plan.sample_rate:
        samples = round(min(_FILL_BLOCK_S, to_s - at_s) * plan.sample_rate)
        encoder.write_audio(np.zeros((plan.channels, samples), np.int16), at_s)
        at_s += samples / plan.sample_rate
    return at_s


def _at(first_s: float | None, media_start_s: float) -> float | None:
    return None if first_s is None else media_start_s + first_s


def _gap(end_s: float | None, next_s: float | None) -> float:
    return 0.0 if end_s is None or next_s is None else max(0.0, next_s - end_s)
