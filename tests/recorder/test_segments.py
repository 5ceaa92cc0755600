"""A recording continued by another worker after a takeover: its segments become one file, packets copied, the gap
between them showing the last picture and silent, the timeline matching the wall clock."""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from recordkit.bot.marks import BeepDetector, audio_samples, detect_flashes
from recordkit.recorder.encoder import AudioFileEncoder, CompositeEncoder
from recordkit.recorder.plan import AudioCodec, AudioFile, AudioPlan, CompositeFile, Container, VideoCodec, VideoPlan
from recordkit.recorder.segments import Segment, join_segments

FPS = 30
BLOCK = 960  # 20 ms of audio, as the mixer hands it over
WIDTH, HEIGHT = 320, 180


def composite_plan(codec: VideoCodec, width: int = WIDTH, height: int = HEIGHT) -> CompositeFile:
    h264 = codec is VideoCodec.H264
    return CompositeFile(
        name="composite",
        container=Container.MP4 if h264 else Container.WEBM,
        video=VideoPlan(codec, width, height, FPS, None),
        audio=AudioPlan(AudioCodec.AAC if h264 else AudioCodec.OPUS, 2, 48_000),
    )


def samples(block: int, marks_s: tuple[float, ...], channels: int = 2) -> np.ndarray:
    """Block `block` of 20 ms: a quiet 300 Hz hum, and a 1 kHz beep of 100 ms from each of `marks_s`."""
    t = (np.arange(BLOCK) + block * BLOCK) / 48_000
    sound = np.sin(2 * np.pi * 300 * t) * 600
    for mark_s in marks_s:
        sound += np.where((t >= mark_s) & (t < mark_s + 0.1), np.sin(2 * np.pi * 1000 * t) * 12_000, 0)
    return np.tile(sound.astype(np.int16), (channels, 1))


def picture(grey: int, plan: CompositeFile) -> av.VideoFrame:
    image = np.full((plan.video.height, plan.video.width, 3), grey, np.uint8)
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def record(path: Path, plan: CompositeFile, seconds: float, grey: int, marks_s: tuple[float, ...] = ()) -> Path:
    """One worker's segment: `seconds` of a solid grey picture with a white flash and a beep at each of `marks_s`
    (seconds of the segment's own time), from an encoder of its own."""
    plain, flash = picture(grey, plan), picture(255, plan)
    with CompositeEncoder.for_file(plan, path) as encoder:
        for index in range(round(seconds * FPS)):
            flashing = any(round(mark_s * FPS) == index for mark_s in marks_s)
            frame = flash if flashing else plain
            frame.pict_type = av.video.frame.PictureType.NONE
            encoder.write_video(frame, index / FPS, index / FPS)
            for block in range(index * 50 // FPS, (index + 1) * 50 // FPS):
                encoder.write_audio(samples(block, marks_s), block * 0.02)
    return path


def record_audio(path: Path, plan: AudioFile, seconds: float, marks_s: tuple[float, ...] = ()) -> Path:
    with AudioFileEncoder(plan, path) as encoder:
        for block in range(round(seconds * 50)):
            encoder.write_audio(samples(block, marks_s, plan.audio.channels), block * 0.02)
    return path


def ffprobe(path: Path, *entries: str) -> dict[str, object]:
    command = ["ffprobe", "-v", "error", "-show_format", "-show_streams", *entries, "-of", "json", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)


def packet_times_s(path: Path, kind: str) -> list[tuple[float, bool]]:
    """(pts seconds, keyframe) of each packet of the stream of `kind` ("v" or "a"), in file order."""
    command = ["ffprobe", "-v", "error", "-select_streams", kind, "-show_entries", "packet=pts_time,flags"]
    result = subprocess.run([*command, "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    rows = [line.split(",") for line in result.stdout.split()]
    return [(float(pts), "K" in flags) for pts, flags in rows]


def decodes_cleanly(path: Path) -> None:
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


@dataclass
class Played:
    """What a player gets from a file: each picture's time and luma, the sound, the flashes and the beeps."""

    pictures: list[tuple[float, np.ndarray]]
    sound: np.ndarray  # mono float, from `sound_start_s`
    sound_start_s: float
    flashes_s: list[float]
    beeps_s: list[float]

    def picture_at(self, at_s: float) -> np.ndarray:
        return next(luma for time_s, luma in reversed(self.pictures) if time_s <= at_s)

    def loudest(self, from_s: float, to_s: float) -> float:
        start = round((from_s - self.sound_start_s) * 48_000)
        return float(np.abs(self.sound[start : round((to_s - self.sound_start_s) * 48_000)]).max())


def play(path: Path) -> Played:
    with av.open(str(path)) as container:
        pictures: list[tuple[float, np.ndarray]] = []
        frames: list[av.VideoFrame] = []
        sound: list[np.ndarray] = []
        sound_start_s: float | None = None
        beeps = BeepDetector(48_000)
        for frame in container.decode(*container.streams):
            at_s = float(frame.pts * frame.time_base)
            if isinstance(frame, av.VideoFrame):
                pictures.append((at_s, frame.to_ndarray(format="gray").astype(np.int16)))
                frames.append(frame)
            elif isinstance(frame, av.AudioFrame):
                sound_start_s = at_s if sound_start_s is None else sound_start_s
                mono = audio_samples(frame)
                beeps.push(mono, at_s)
                sound.append(mono.astype(np.float64))
    return Played(pictures, np.concatenate(sound), sound_start_s or 0.0, detect_flashes(frames), beeps.onsets_s)


def duration_s(path: Path) -> float:
    return float(ffprobe(path)["format"]["duration"])  # type: ignore[index]


@pytest.mark.parametrize("codec", [VideoCodec.H264, VideoCodec.VP8])
def test_gap_shows_the_last_picture_and_is_silent(codec: VideoCodec, tmp_path: Path) -> None:
    """Worker A records 3 s and dies; worker B goes on at 4.2 s: the joined file shows A's last picture and is
    silent in between, and B's flash and beep land at their wall-clock time, together."""
    plan = composite_plan(codec)
    suffix = plan.container.value
    first = record(tmp_path / f"a.{suffix}", plan, 3.0, grey=60, marks_s=(1.0,))
    second = record(tmp_path / f"b.{suffix}", plan, 2.5, grey=140, marks_s=(1.0,))
    second_s = duration_s(second)
    out = tmp_path / f"joined.{suffix}"

    joined = join_segments([Segment(first, 0.0), Segment(second, 4.2)], out, plan)

    probe = ffprobe(out)
    assert sorted(s["codec_type"] for s in probe["streams"]) == ["audio", "video"]  # type: ignore[union-attr, index]
    assert joined.size == out.stat().st_size
    assert joined.gaps_s == [pytest.approx(1.2, abs=1 / FPS)]
    assert duration_s(out) == pytest.approx(4.2 + second_s, abs=1 / FPS)
    assert joined.duration_s == pytest.approx(duration_s(out), abs=0.01)
    decodes_cleanly(out)

    video = packet_times_s(out, "v")
    steps = np.diff([time_s for time_s, _ in video])
    assert steps.min() > 0 and steps.max() <= 1.5 / FPS
    keyframes_s = [time_s for time_s, keyframe in video if keyframe]
    assert any(abs(time_s - 3.0) < 1.5 / FPS for time_s in keyframes_s)  # the filler starts with one
    assert any(abs(time_s - 4.2) < 1.5 / FPS for time_s in keyframes_s)  # and so does B
    audio = [time_s for time_s, _ in packet_times_s(out, "a")]
    assert np.diff(audio).min() > 0 and np.diff(audio).max() < 0.03

    played = play(out)
    last_before = played.picture_at(2.99)
    assert abs(float(last_before.mean()) - 60) < 25  # A's grey (in limited range)
    for at_s in (3.1, 3.6, 4.15):
        assert np.abs(played.picture_at(at_s) - last_before).mean() < 2
    assert abs(float(played.picture_at(4.4).mean()) - float(last_before.mean())) > 40  # B's grey after the gap
    assert played.loudest(3.05, 4.15) < 1e-3
    assert played.loudest(2.5, 2.9) > 0.01 and played.loudest(4.4, 4.9) > 0.01  # A's and B's hum
    assert played.flashes_s == pytest.approx([1.0, 5.2], abs=0.04)
    assert played.beeps_s == pytest.approx([1.0, 5.2], abs=0.04)
    assert played.beeps_s == pytest.approx(played.flashes_s, abs=0.02)


def test_overlap_keeps_the_later_segment_from_its_first_frame(tmp_path: Path) -> None:
    """B started at 2.0 s while A went on to 3.0 s: A's end is cut where B begins, the timeline is not."""
    plan = composite_plan(VideoCodec.H264)
    first = record(tmp_path / "a.mp4", plan, 3.0, grey=60)
    second = record(tmp_path / "b.mp4", plan, 2.5, grey=140, marks_s=(0.5,))
    out = tmp_path / "joined.mp4"

    joined = join_segments([Segment(first, 0.0), Segment(second, 2.0)], out, plan)

    assert joined.gaps_s == [0.0]
    assert duration_s(out) == pytest.approx(2.0 + duration_s(second), abs=1 / FPS)
    decodes_cleanly(out)
    steps = np.diff([time_s for time_s, _ in packet_times_s(out, "v")])
    assert steps.min() > 0 and steps.max() <= 1.5 / FPS
    played = play(out)
    assert abs(float(played.picture_at(1.9).mean()) - float(played.picture_at(2.2).mean())) > 40
    assert np.abs(played.picture_at(2.2) - played.picture_at(2.9)).mean() < 2  # B's picture, not A's
    assert played.flashes_s == pytest.approx([2.5], abs=0.04)
    assert played.beeps_s == pytest.approx([2.5], abs=0.04)


def cut_at(path: Path, at_s: float) -> None:
    """What a kill -9 leaves: the file ends half-way through the video packet at `at_s`, in the middle of a
    fragment (the rest of the fragment, its sound included, never reached the disk)."""
    with av.open(str(path)) as container:
        packet = next(p for p in container.demux(video=0) if p.pts is not None and p.pts * p.time_base >= at_s)
        assert packet.pos is not None
        cut = packet.pos + packet.size // 2
    path.write_bytes(path.read_bytes()[:cut])


def test_segment_cut_short_by_a_kill_is_joined_up_to_the_cut(tmp_path: Path) -> None:
    plan = composite_plan(VideoCodec.H264)
    first = record(tmp_path / "a.mp4", plan, 3.0, grey=60, marks_s=(1.0,))
    cut_at(first, 2.5)
    second = record(tmp_path / "b.mp4", plan, 2.0, grey=140, marks_s=(1.0,))
    out = tmp_path / "joined.mp4"

    joined = join_segments([Segment(first, 0.0), Segment(second, 4.0)], out, plan)

    assert joined.gaps_s == [pytest.approx(1.5, abs=1.5 / FPS)]  # from the cut
    assert duration_s(out) == pytest.approx(4.0 + duration_s(second), abs=1 / FPS)
    decodes_cleanly(out)
    steps = np.diff([time_s for time_s, _ in packet_times_s(out, "v")])
    assert steps.min() > 0 and steps.max() <= 1.5 / FPS
    played = play(out)
    assert played.loudest(2.05, 3.95) < 1e-3  # the cut fragment's sound was lost with it
    assert np.abs(played.picture_at(3.5) - played.picture_at(2.45)).mean() < 2
    assert played.flashes_s == pytest.approx([1.0, 5.0], abs=0.04)
    assert played.beeps_s == pytest.approx([1.0, 5.0], abs=0.04)


@pytest.mark.parametrize(
    ("container", "codec", "codec_name"),
    [
        (Container.M4A, AudioCodec.AAC, "aac"),
        (Container.MP3, AudioCodec.MP3, "mp3"),
        (Container.OGG, AudioCodec.OPUS, "opus"),
    ],
)
def test_audio_only_segments_are_joined_with_silence(
    container: Container, codec: AudioCodec, codec_name: str, tmp_path: Path
) -> None:
    plan = AudioFile("audio", container, AudioPlan(codec, 2, 48_000))
    first = record_audio(tmp_path / f"a.{container.value}", plan, 2.0, marks_s=(1.0,))
    second = record_audio(tmp_path / f"b.{container.value}", plan, 2.0, marks_s=(0.5,))
    out = tmp_path / f"joined.{container.value}"

    joined = join_segments([Segment(first, 0.0), Segment(second, 3.0)], out, plan)

    (stream,) = ffprobe(out)["streams"]  # type: ignore[misc]
    assert stream["codec_name"] == codec_name
    assert joined.gaps_s == [pytest.approx(3.0 - duration_s(first), abs=0.03)]  # from where its sound ends
    assert duration_s(out) == pytest.approx(3.0 + duration_s(second), abs=0.03)
    decodes_cleanly(out)
    played = play(out)
    assert played.loudest(2.05, 2.95) < 1e-3
    assert played.beeps_s == pytest.approx([1.0, 3.5], abs=0.04)


def test_joining_in_place_replaces_the_first_segment(tmp_path: Path) -> None:
    plan = composite_plan(VideoCodec.H264)
    first = record(tmp_path / "a.mp4", plan, 2.0, grey=60)
    second = record(tmp_path / "b.mp4", plan, 2.0, grey=140)

    joined = join_segments([Segment(first, 0.0), Segment(second, 2.5)], first, plan)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]  # no temporary file left
    assert joined.size == first.stat().st_size
    assert duration_s(first) == pytest.approx(2.5 + duration_s(second), abs=1 / FPS)
    decodes_cleanly(first)


def test_a_segment_left_without_a_header_is_left_out(tmp_path: Path) -> None:
    """A worker killed before its file had a header leaves nothing to copy: its time is part of the gap."""
    plan = composite_plan(VideoCodec.H264)
    first = record(tmp_path / "a.mp4", plan, 2.0, grey=60)
    empty = tmp_path / "b.mp4"
    empty.write_bytes(b"")
    third = record(tmp_path / "c.mp4", plan, 2.0, grey=140)
    out = tmp_path / "joined.mp4"

    joined = join_segments([Segment(first, 0.0), Segment(empty, 2.2), Segment(third, 3.0)], out, plan)

    assert joined.gaps_s == [0.0, pytest.approx(1.0, abs=1 / FPS)]
    assert duration_s(out) == pytest.approx(3.0 + duration_s(third), abs=1 / FPS)
    decodes_cleanly(out)


def test_a_single_segment_is_copied_whole(tmp_path: Path) -> None:
    plan = composite_plan(VideoCodec.VP8)
    segment = record(tmp_path / "a.webm", plan, 2.0, grey=60, marks_s=(1.0,))
    out = tmp_path / "copy.webm"

    joined = join_segments([Segment(segment, 0.0)], out, plan)

    assert joined.gaps_s == []
    assert len(packet_times_s(out, "v")) == len(packet_times_s(segment, "v")) == 2 * FPS
    assert len(packet_times_s(out, "a")) == len(packet_times_s(segment, "a"))
    assert duration_s(out) == pytest.approx(duration_s(segment), abs=0.01)
    assert play(out).flashes_s == pytest.approx([1.0], abs=0.04)


def test_two_encoders_of_one_plan_write_the_same_codec_parameters(tmp_path: Path) -> None:
    """Why copying works: the two workers' H.264 and AAC headers are byte for byte the same (at 720p too)."""
    plan = composite_plan(VideoCodec.H264, 1280, 720)
    extradata = []
    for name in ("a.mp4", "b.mp4"):
        record(tmp_path / name, plan, 0.2, grey=60)
        with av.open(str(tmp_path / name)) as container:
            extradata.append([bytes(stream.codec_context.extradata or b"") for stream in container.streams])
    assert extradata[0] == extradata[1] and all(extradata[0])


def test_segment_from_a_different_encoder_is_re_encoded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A segment whose H.264 headers differ (here: another picture size) is decoded and encoded again, so the
    file keeps one set of codec parameters; the log says so."""
    plan = composite_plan(VideoCodec.H264)
    first = record(tmp_path / "a.mp4", plan, 2.0, grey=60)
    other = record(tmp_path / "b.mp4", composite_plan(VideoCodec.H264, 352, 198), 2.0, grey=140, marks_s=(1.0,))
    out = tmp_path / "joined.mp4"

    with caplog.at_level(logging.WARNING, logger="recordkit.recorder.segments"):
        joined = join_segments([Segment(first, 0.0), Segment(other, 2.5)], out, plan)

    assert any("re-encoding" in record.getMessage() for record in caplog.records)
    video = next(s for s in ffprobe(out)["streams"] if s["codec_type"] == "video")  # type: ignore[union-attr, index]
    assert (video["width"], video["height"]) == (WIDTH, HEIGHT)
    assert joined.gaps_s == [pytest.approx(0.5, abs=1 / FPS)]
    decodes_cleanly(out)
    played = play(out)
    assert played.flashes_s == pytest.approx([3.5], abs=0.04)
    assert played.beeps_s == pytest.approx([3.5], abs=0.04)
