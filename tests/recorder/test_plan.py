"""The output plan a recording's stored configuration turns into (recordings.md §9, §10.1), case by case."""

from __future__ import annotations

from typing import Any

import pytest

from recordkit.recorder.plan import (
    AudioCodec,
    AudioFile,
    AudioPlan,
    CompositeFile,
    Container,
    Corner,
    OutputPlan,
    VideoCodec,
    VideoPlan,
    WatermarkSpec,
)
from recordkit.recording.config import Levels, composite_file_name, main_file_extension, resolve

MEETING = "b3f6a2c4-1e5d-4a7b-9c8d-2f3e4a5b6c7d"
INVOKED_MS = 1772445600000
STEM = f"{MEETING}_{INVOKED_MS}"


def plan_for(request: dict[str, Any], meeting: dict[str, Any] | None = None) -> OutputPlan:
    """The plan of a recording started with `request` in a meeting with `meeting` as its recording_config."""
    effective = resolve(Levels(request, meeting or {}, {}))
    name = composite_file_name(effective["file_name_prefix"], MEETING, INVOKED_MS, main_file_extension(effective))
    stored = {key: value for key, value in effective.items() if key != "storage_config"}
    return OutputPlan.from_recording(stored, name)


def stereo(codec: AudioCodec) -> AudioPlan:
    return AudioPlan(codec, 2, 48_000)


def video(codec: VideoCodec, width: int = 1280, height: int = 720, watermark: WatermarkSpec | None = None) -> VideoPlan:
    return VideoPlan(codec, width, height, 30, watermark)


CASES: list[tuple[str, dict[str, Any], CompositeFile | None, AudioFile | None]] = [
    (
        "defaults: H264 720p MP4 with AAC stereo, no audio file",
        {},
        CompositeFile(f"{STEM}.mp4", Container.MP4, video(VideoCodec.H264), stereo(AudioCodec.AAC)),
        None,
    ),
    (
        "VP8 goes to WebM with Opus",
        {"video_config": {"codec": "VP8"}},
        CompositeFile(f"{STEM}.webm", Container.WEBM, video(VideoCodec.VP8), stereo(AudioCodec.OPUS)),
        None,
    ),
    (
        "VP9 with an audio file: Opus inside, Ogg beside, whatever audio codec was asked",
        {"video_config": {"codec": "VP9"}, "audio_config": {"codec": "MP3"}},
        CompositeFile(f"{STEM}.webm", Container.WEBM, video(VideoCodec.VP9), stereo(AudioCodec.OPUS)),
        AudioFile(f"{STEM}.ogg", Container.OGG, stereo(AudioCodec.OPUS)),
    ),
    (
        "H264 with an MP3 audio file: the MP4 keeps AAC",
        {"audio_config": {"codec": "MP3"}},
        CompositeFile(f"{STEM}.mp4", Container.MP4, video(VideoCodec.H264), stereo(AudioCodec.AAC)),
        AudioFile(f"{STEM}.mp3", Container.MP3, stereo(AudioCodec.MP3)),
    ),
    (
        "audio_config with export_file false: no audio file",
        {"audio_config": {"export_file": False}},
        CompositeFile(f"{STEM}.mp4", Container.MP4, video(VideoCodec.H264), stereo(AudioCodec.AAC)),
        None,
    ),
    (
        "audio only: the M4A is the main file",
        {"video_config": {"export_file": False}, "audio_config": {"channel": "mono"}},
        None,
        AudioFile(f"{STEM}.m4a", Container.M4A, AudioPlan(AudioCodec.AAC, 1, 48_000)),
    ),
    (
        "odd sizes are rounded up to even, portrait kept",
        {"video_config": {"width": 719, "height": 1279}},
        CompositeFile(f"{STEM}.mp4", Container.MP4, video(VideoCodec.H264, 720, 1280), stereo(AudioCodec.AAC)),
        None,
    ),
    (
        "mono applies to the composite and to the audio file",
        {"audio_config": {"channel": "mono"}},
        CompositeFile(f"{STEM}.mp4", Container.MP4, video(VideoCodec.H264), AudioPlan(AudioCodec.AAC, 1, 48_000)),
        AudioFile(f"{STEM}.m4a", Container.M4A, AudioPlan(AudioCodec.AAC, 1, 48_000)),
    ),
    (
        "watermark with one side given, default corner",
        {"video_config": {"watermark": {"url": "https://example.com/logo.png", "size": {"width": 120}}}},
        CompositeFile(
            f"{STEM}.mp4",
            Container.MP4,
            video(VideoCodec.H264, watermark=WatermarkSpec("https://example.com/logo.png", 120, None, Corner.LEFT_TOP)),
            stereo(AudioCodec.AAC),
        ),
        None,
    ),
]


@pytest.mark.parametrize(("case", "request_body", "composite", "audio_file"), CASES, ids=[case[0] for case in CASES])
def test_plan_files(
    case: str, request_body: dict[str, Any], composite: CompositeFile | None, audio_file: AudioFile | None
) -> None:
    plan = plan_for(request_body)
    assert (plan.composite, plan.audio_file) == (composite, audio_file)
    main = composite if composite is not None else audio_file
    assert main is not None
    assert plan.main_file_name == main.name


def test_meeting_level_settings_and_prefix_reach_the_plan() -> None:
    plan = plan_for(
        {"file_name_prefix": "weekly", "max_seconds": 600},
        {"video_config": {"codec": "VP8", "watermark": {"url": "data:,x", "position": "right bottom"}}},
    )
    assert plan.composite is not None
    assert plan.composite.name == f"weekly_{STEM}.webm"
    assert plan.composite.video.watermark == WatermarkSpec("data:,x", None, None, Corner.RIGHT_BOTTOM)
    assert plan.max_seconds == 600


def test_interactive_recording_spools_mp4_and_reports_a_tar() -> None:
    plan = plan_for({"interactive_config": {"type": "ID3"}, "audio_config": {}})
    assert plan.interactive
    assert plan.composite is not None
    assert (plan.composite.name, plan.composite.container) == (f"{STEM}.tar", Container.MP4)
    assert plan.audio_file == AudioFile(f"{STEM}.m4a", Container.M4A, stereo(AudioCodec.AAC))


def test_rtmp_target_and_default_limits() -> None:
    plan = plan_for({"rtmp_out_config": {"rtmp_url": "rtmp://live.example.com/app/key"}})
    assert plan.rtmp_url == "rtmp://live.example.com/app/key"
    assert plan.max_seconds == 86400
    assert not plan.interactive
