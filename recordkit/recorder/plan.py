"""The output plan of a composite recording: which files it writes, in which containers and codecs, at which
size and rate, with which watermark (recordings.md §9, §10.1).

Request → plan → pipeline: the configuration was merged and validated when the recording was started, and the
row stores the effective result (`config.resolve()`) and the main file's name. `OutputPlan.from_recording`
turns those into typed values once, before the recorder starts, so the pipeline stages never read the dict and
never decide a default themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from recordkit.recording.config import audio_file_name

FRAME_RATE = 30  # §9.1: a fixed rate, so the encoder's cost is fixed
SAMPLE_RATE = 48_000  # §9.3: every audio codec runs at 48 kHz


class Container(StrEnum):
    """The container of a file, named by its extension."""

    MP4 = "mp4"  # fragmented MP4: H.264 + AAC
    WEBM = "webm"  # WebM: VP8/VP9 + Opus
    M4A = "m4a"  # fragmented MP4 holding only AAC
    MP3 = "mp3"
    OGG = "ogg"  # Ogg Opus


class VideoCodec(StrEnum):
    H264 = "H264"
    VP8 = "VP8"
    VP9 = "VP9"


class AudioCodec(StrEnum):
    AAC = "AAC"
    MP3 = "MP3"
    OPUS = "OPUS"


class Corner(StrEnum):
    """Where the watermark sits, flush against that corner (§9.4)."""

    LEFT_TOP = "left top"
    RIGHT_TOP = "right top"
    LEFT_BOTTOM = "left bottom"
    RIGHT_BOTTOM = "right bottom"


@dataclass(frozen=True)
class WatermarkSpec:
    """The watermark as asked: the image's URL, the size to draw it at (either side may be left to the image's
    aspect ratio, both to its own size) and its corner."""

    url: str
    width: int | None
    height: int | None
    position: Corner


@dataclass(frozen=True)
class VideoPlan:
    """The composite picture: codec, even output size (4:2:0 needs it, §9.1), frame rate and watermark."""

    codec: VideoCodec
    width: int
    height: int
    fps: int
    watermark: WatermarkSpec | None


@dataclass(frozen=True)
class AudioPlan:
    """One audio track: codec, channel count (1 or 2) and sample rate."""

    codec: AudioCodec
    channels: int
    sample_rate: int

    @property
    def layout(self) -> str:
        """The channel layout's FFmpeg name: "mono" or "stereo"."""
        return "mono" if self.channels == 1 else "stereo"


@dataclass(frozen=True)
class CompositeFile:
    """The video file: grid picture plus mixed audio.

    `name` is the name the recording reports (§10.1). For an interactive recording it ends in `.tar`: the spool
    holds HLS segments instead of an MP4 (crash-safe like it), and finalising packages them (§9.5).
    """

    name: str
    container: Container
    video: VideoPlan
    audio: AudioPlan


@dataclass(frozen=True)
class AudioFile:
    """A file holding only the mixed audio: the separate audio file, or the main file of an audio-only
    recording (§9.3)."""

    name: str
    container: Container
    audio: AudioPlan


@dataclass(frozen=True)
class OutputPlan:
    """Everything one composite recording writes. At least one of `composite` and `audio_file` is set; when
    only `audio_file` is, it is the main file (audio-only recording)."""

    composite: CompositeFile | None
    audio_file: AudioFile | None
    interactive: bool
    rtmp_url: str | None
    max_seconds: int

    @property
    def main_file_name(self) -> str:
        """The name of the file `download_url` serves."""
        if self.composite is not None:
            return self.composite.name
        assert self.audio_file is not None, "a plan writes at least one file"
        return self.audio_file.name

    @classmethod
    def from_recording(cls, config: dict[str, Any], output_file_name: str) -> OutputPlan:
        """The plan of a recording from its stored effective configuration and main file name."""
        video_config, audio_config = config["video_config"], config["audio_config"]
        channels = 1 if audio_config["channel"] == "mono" else 2
        video_codec = VideoCodec(video_config["codec"])
        composite: CompositeFile | None = None
        if video_config["export_file"]:
            h264 = video_codec is VideoCodec.H264
            composite = CompositeFile(
                name=output_file_name,
                container=Container.MP4 if h264 else Container.WEBM,
                video=VideoPlan(
                    codec=video_codec,
                    width=_even(video_config["width"]),
                    height=_even(video_config["height"]),
                    fps=FRAME_RATE,
                    watermark=_watermark(video_config.get("watermark")),
                ),
                # §9.3: AAC inside MP4 even when the audio file is MP3; Opus in WebM whatever was asked.
                audio=AudioPlan(AudioCodec.AAC if h264 else AudioCodec.OPUS, channels, SAMPLE_RATE),
            )
            audio_name = audio_file_name(config, output_file_name)
        else:
            audio_name = output_file_name if config["audio_file"] else None
        audio_file = None
        if audio_name is not None:
            container = Container(audio_name.rsplit(".", 1)[1])
            codec = {Container.M4A: AudioCodec.AAC, Container.MP3: AudioCodec.MP3, Container.OGG: AudioCodec.OPUS}
            audio_file = AudioFile(audio_name, container, AudioPlan(codec[container], channels, SAMPLE_RATE))
        return cls(
            composite=composite,
            audio_file=audio_file,
            interactive=config.get("interactive_config") is not None,
            rtmp_url=config.get("rtmp_url"),
            max_seconds=config["max_seconds"],
        )


def _even(size: int) -> int:
    return size + size % 2


def _watermark(given: dict[str, Any] | None) -> WatermarkSpec | None:
    if given is None:
        return None
    size = given.get("size") or {}
    return WatermarkSpec(
        url=given["url"],
        width=size.get("width"),
        height=size.get("height"),
        position=Corner(given.get("position", Corner.LEFT_TOP.value)),
    )
