"""The recording's files: what ffprobe and a decoder find in them, after a pause, and after a kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

from recordkit.bot.marks import BeepDetector, audio_samples, detect_flashes
from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock, SyntheticVideoTrack
from recordkit.recorder.encoder import AudioFileEncoder, CompositeEncoder, EncoderClosed
from recordkit.recorder.outputs.file import FileOutput
from recordkit.recorder.plan import (
    AudioCodec,
    AudioFile,
    AudioPlan,
    CompositeFile,
    Container,
    VideoCodec,
    VideoPlan,
)

FPS = 30
AUDIO_BLOCK = 960  # 20 ms, as the mixer is called


def composite_plan(codec: VideoCodec, width: int = 1280, height: int = 720, channels: int = 2) -> CompositeFile:
    h264 = codec is VideoCodec.H264
    return CompositeFile(
        name="composite",
        container=Container.MP4 if h264 else Container.WEBM,
        video=VideoPlan(codec, width, height, FPS, None),
        audio=AudioPlan(AudioCodec.AAC if h264 else AudioCodec.OPUS, channels, 48_000),
    )


class Source:
    """The bot's test pattern and tone as a recording would get them: frame n at n/30 s, with a flash and a beep
    at each whole second of content time."""

    def __init__(self, width: int = 1280, height: int = 720, channels: int = 2) -> None:
        clock = SyntheticClock()
        self.video = SyntheticVideoTrack(clock, width, height, label="encoder test")
        self.audio = SyntheticAudioTrack(clock, channels=channels)
        self.channels = channels

    def frame(self, index: int) -> av.VideoFrame:
        return self.video.frame_at(index)

    def samples(self, block: int) -> np.ndarray:
        """Block `block` of 20 ms as the mixer returns it: int16 shaped (channels, 960)."""
        return self.audio.frame_at(block).to_ndarray().reshape(-1, self.channels).T.copy()


def write_composite(
    encoder: CompositeEncoder, source: Source, seconds: float, *, start_s: float = 0.0, content_shift: int = 0
) -> None:
    """Write `seconds` of media from timeline time `start_s`, showing content `content_shift` frames ahead."""
    first, frames = round(start_s * FPS), round(seconds * FPS)
    for index in range(first, first + frames):
        encoder.write_video(source.frame(index + content_shift), index / FPS, index / FPS)
        block_shift = content_shift * 50 // FPS
        for block in range(index * 50 // FPS, (index + 1) * 50 // FPS):
            encoder.write_audio(source.samples(block + block_shift), block * 0.02)


def ffprobe(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)


@dataclass
class Decoded:
    frames: int
    distinct_frames: int
    last_video_s: float
    flashes_s: list[float]
    beeps_s: list[float]
    audio_s: float


def decode(path: Path) -> Decoded:
    """Decode every frame of every stream; where the flashes and beeps are."""
    with av.open(str(path)) as container:
        frames, distinct, last_s, previous = 0, 0, 0.0, None
        video_frames: list[av.VideoFrame] = []
        beeps = BeepDetector(48_000)
        audio_s = 0.0
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                luma = frame.to_ndarray(format="gray")
                frames += 1
                distinct += previous is None or not np.array_equal(luma, previous)
                previous, last_s = luma, float(frame.pts * frame.time_base)
                video_frames.append(frame)
            elif isinstance(frame, av.AudioFrame):
                at_s = float(frame.pts * frame.time_base)
                beeps.push(audio_samples(frame), at_s)
                audio_s = at_s + frame.samples / frame.sample_rate
    return Decoded(frames, distinct, last_s, detect_flashes(video_frames), beeps.onsets_s, audio_s)


EXPECTED_CODECS = {VideoCodec.H264: ("h264", "aac"), VideoCodec.VP8: ("vp8", "opus"), VideoCodec.VP9: ("vp9", "opus")}


@pytest.mark.parametrize("codec", list(VideoCodec))
def test_composite_file_plays_with_the_asked_codecs(codec: VideoCodec, tmp_path: Path) -> None:
    path = tmp_path / "spool"
    with CompositeEncoder.for_file(composite_plan(codec), path) as encoder:
        write_composite(encoder, Source(), 3.0)
        assert encoder.written_s == pytest.approx(3.0)

    probe = ffprobe(path)
    video, audio = (next(s for s in probe["streams"] if s["codec_type"] == kind) for kind in ("video", "audio"))
    assert (video["codec_name"], audio["codec_name"]) == EXPECTED_CODECS[codec]
    assert (video["width"], video["height"], video["pix_fmt"]) == (1280, 720, "yuv420p")
    assert (int(audio["sample_rate"]), audio["channels"]) == (48_000, 2)
    assert float(probe["format"]["duration"]) == pytest.approx(3.0, abs=0.1)
    if codec is VideoCodec.H264:
        assert probe["format"]["format_name"].startswith("mov,mp4")
        assert (video["profile"], audio["profile"]) == ("High", "LC")
    else:
        assert probe["format"]["format_name"] == "matroska,webm"

    decoded = decode(path)
    assert decoded.frames == 90 and decoded.distinct_frames == 90  # the picture moves
    # Flashes where they were drawn (MP4 starts its content one AAC priming frame, 21 ms, late: both streams).
    assert decoded.flashes_s == pytest.approx([1.0, 2.0], abs=0.025)
    assert decoded.beeps_s == pytest.approx(decoded.flashes_s, abs=0.005)  # audio and video in sync


@pytest.mark.parametrize(
    ("container", "codec", "channels", "codec_name"),
    [
        (Container.M4A, AudioCodec.AAC, 2, "aac"),
        (Container.M4A, AudioCodec.AAC, 1, "aac"),
        (Container.MP3, AudioCodec.MP3, 2, "mp3"),
        (Container.MP3, AudioCodec.MP3, 1, "mp3"),
        (Container.OGG, AudioCodec.OPUS, 2, "opus"),
    ],
)
def test_audio_file_plays(
    container: Container, codec: AudioCodec, channels: int, codec_name: str, tmp_path: Path
) -> None:
    path = tmp_path / "spool"
    source = Source(channels=channels)
    with AudioFileEncoder(AudioFile("audio", container, AudioPlan(codec, channels, 48_000)), path) as encoder:
        for block in range(150):
            encoder.write_audio(source.samples(block), block * 0.02)
    probe = ffprobe(path)
    (stream,) = probe["streams"]
    assert (stream["codec_name"], stream["channels"], int(stream["sample_rate"])) == (codec_name, channels, 48_000)
    assert float(probe["format"]["duration"]) == pytest.approx(3.0, abs=0.1)
    assert decode(path).beeps_s == pytest.approx([1.0, 2.0], abs=0.03)


def test_mono_composite(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    with CompositeEncoder.for_file(composite_plan(VideoCodec.VP8, 320, 180, channels=1), path) as encoder:
        write_composite(encoder, Source(320, 180, channels=1), 1.0)
    assert [s.get("channels") for s in ffprobe(path)["streams"]] == [None, 1]


def test_pause_leaves_no_gap_in_file(tmp_path: Path) -> None:
    """1.5 s recorded, a 3.5 s pause (the bot's content moves on), 1.5 s more: 3 s of file, no hole."""
    path = tmp_path / "spool"
    source = Source(640, 360)
    with CompositeEncoder.for_file(composite_plan(VideoCodec.H264, 640, 360), path) as encoder:
        write_composite(encoder, source, 1.5)
        write_composite(encoder, source, 1.5, start_s=1.5, content_shift=round(3.5 * FPS))
    assert float(ffprobe(path)["format"]["duration"]) == pytest.approx(3.0, abs=0.1)
    decoded = decode(path)
    assert decoded.frames == 90
    # The bot flashes and beeps at each whole second of its own time: at 1.0 before the pause, then its
    # seconds 5 and 6 land at 1.5 and 2.5: the counter jumped by the pause, and the file went straight on.
    assert decoded.flashes_s == pytest.approx([1.0, 1.5, 2.5], abs=0.025)
    assert decoded.beeps_s == pytest.approx(decoded.flashes_s, abs=0.005)
    with av.open(str(path)) as container:
        times: dict[str, list[float]] = {"video": [], "audio": []}
        for packet in container.demux():
            if packet.pts is not None:
                times[packet.stream.type].append(float(packet.pts * packet.time_base))
    largest_step = {"video": 1 / FPS, "audio": 1024 / 48_000}
    for kind, kind_times in times.items():
        # The first frame of an MP4 is stretched by the audio's priming; from then on, every step is one frame.
        assert np.diff(sorted(kind_times)[1:]).max() <= largest_step[kind] + 0.001, kind


class FlvFile:
    """A live output that muxes FLV into a local file, as the RTMP output does onto a server."""

    live = True
    keyframe_wanted = False

    def __init__(self, path: Path) -> None:
        self.name = path.name
        self.path = path

    def open(self, video: VideoStream, audio: AudioStream) -> None:
        self.container = av.open(str(self.path), "w", format="flv")
        self.video = self.container.add_stream_from_template(video)
        self.audio = self.container.add_stream_from_template(audio)
        self.container.start_encoding()

    def write_video(self, packet: av.Packet, wall_s: float) -> None:
        packet.stream = self.video
        self.container.mux(packet)

    def write_audio(self, packet: av.Packet) -> None:
        packet.stream = self.audio
        self.container.mux(packet)

    def close(self) -> None:
        self.container.close()


def test_a_pause_is_black_and_silent_on_a_live_output_and_absent_from_the_file(tmp_path: Path) -> None:
    """The same pause as above, with a live output besides the file: one encode for both. The file is what it
    is without a live output; the live stream goes on through the pause, black and silent, and comes back in
    sync."""
    plan, source = composite_plan(VideoCodec.H264, 640, 360), Source(640, 360)
    path, flv = tmp_path / "spool", tmp_path / "live.flv"
    pause_frames = round(3.5 * FPS)
    with CompositeEncoder(plan, [FileOutput(plan.container, path), FlvFile(flv)]) as encoder:
        write_composite(encoder, source, 1.5)
        for tick in range(pause_frames):
            encoder.write_pause(1.5 + tick / FPS)
        write_composite(encoder, source, 1.5, start_s=1.5, content_shift=pause_frames)
    assert float(ffprobe(path)["format"]["duration"]) == pytest.approx(3.0, abs=0.1)
    in_file = decode(path)
    assert in_file.frames == 90
    assert in_file.flashes_s == pytest.approx([1.0, 1.5, 2.5], abs=0.025)
    assert in_file.beeps_s == pytest.approx(in_file.flashes_s, abs=0.005)

    live = decode(flv)
    assert live.frames == 90 + pause_frames
    assert live.flashes_s == pytest.approx([1.0, 5.0, 6.0], abs=0.04)
    # The stream's silence is counted in whole audio frames (21.3 ms), its black in video frames.
    assert live.beeps_s == pytest.approx(live.flashes_s, abs=0.03)
    with av.open(str(flv)) as container:
        black = [
            float(np.asarray(frame.to_ndarray(format="gray")).mean())
            for frame in container.decode(video=0)
            if 1.6 <= float(frame.time) <= 4.9
        ]
    with av.open(str(flv)) as container:
        loudest = max(
            float(np.abs(frame.to_ndarray()).max())
            for frame in container.decode(audio=0)
            if 1.7 <= float(frame.time) <= 4.9
        )
    assert len(black) >= 95 and max(black) < 20, "black pictures while paused"
    assert loudest < 0.001, "silence while paused"


def test_first_packet_leaves_with_the_first_frame(tmp_path: Path) -> None:
    """No encoder lookahead or B-frames: the recording can show RECORDING as soon as it encodes."""
    for codec in VideoCodec:
        source = Source(320, 180)
        with CompositeEncoder.for_file(composite_plan(codec, 320, 180), tmp_path / f"spool-{codec}") as encoder:
            assert encoder.first_packet_at_s is None
            encoder.write_video(source.frame(0), 0.0, 0.0)
            assert encoder.first_packet_at_s is not None, codec


def test_video_starts_at_zero_and_repeated_slots_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    source = Source(640, 360)
    with CompositeEncoder.for_file(composite_plan(VideoCodec.VP8, 320, 180), path) as encoder:
        encoder.write_video(source.frame(0), 0.4, 0.4)  # late first frame: shown from 0 (and scaled to 320x180)
        for index in range(13, 30):
            encoder.write_video(source.frame(index), index / FPS, index / FPS)
            encoder.write_video(source.frame(index), index / FPS + 0.01, index / FPS + 0.01)  # same slot again
        for block in range(50):
            encoder.write_audio(source.samples(block), block * 0.02)
        assert encoder.frames_dropped == 17
    with av.open(str(path)) as container:
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
        assert container.streams.video[0].width == 320
    assert times[0] == 0.0 and times[1] == pytest.approx(13 / FPS, abs=0.002) and len(times) == 18


def test_audio_gaps_become_silence_and_overlaps_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    # 500 Hz: a whole number of periods per 20 ms block, so blocks join without a click (Opus drops DC).
    wave = np.sin(2 * np.pi * 500 * np.arange(AUDIO_BLOCK) / 48_000).reshape(1, -1)
    loud, too_loud = (wave * 8000).astype(np.int16), (wave * 30000).astype(np.int16)
    plan = AudioFile("audio", Container.OGG, AudioPlan(AudioCodec.OPUS, 1, 48_000))
    with AudioFileEncoder(plan, path) as encoder:
        for block in range(50):
            encoder.write_audio(loud, block * 0.02)
        for block in range(100, 150):  # a second missing in between
            encoder.write_audio(loud, block * 0.02)
        encoder.write_audio(too_loud, 2.5)  # overlaps what was written: dropped
        encoder.write_audio(loud, 3.0 + 0.0004)  # within the jitter tolerance: continues at 3.0
        assert encoder.written_s == pytest.approx(3.02)
    with av.open(str(path)) as container:
        samples = np.concatenate([audio_samples(f) for f in container.decode(audio=0)])
    level = [np.abs(samples[i * 4800 : (i + 1) * 4800]).max() for i in range(samples.size // 4800)]
    assert min(level[1:9]) > 0.15 and max(level[11:19]) < 0.01 and min(level[21:29]) > 0.15
    assert max(level) < 0.5  # the full-scale overlapping block never made it in


def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    encoder = CompositeEncoder.for_file(composite_plan(VideoCodec.H264, 320, 180), tmp_path / "spool")
    source = Source(320, 180)
    encoder.write_video(source.frame(0), 0.0, 0.0)
    encoder.close()
    encoder.close()
    with pytest.raises(EncoderClosed):
        encoder.write_video(source.frame(1), 1 / FPS, 1 / FPS)
    with pytest.raises(EncoderClosed):
        encoder.write_audio(source.samples(0), 0.0)
    stereo_mp3 = AudioFile("a", Container.MP3, AudioPlan(AudioCodec.MP3, 2, 48_000))
    with AudioFileEncoder(stereo_mp3, tmp_path / "a") as audio, pytest.raises(ValueError, match="int16"):
        audio.write_audio(np.zeros((1, 960), np.int16), 0.0)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from recordkit.recorder.encoder import CompositeEncoder
    from recordkit.recorder.plan import VideoCodec
    from tests.recorder.test_encoder import Source, composite_plan, write_composite

    encoder = CompositeEncoder.for_file(composite_plan(VideoCodec[sys.argv[1]], 640, 360), Path(sys.argv[2]))
    write_composite(encoder, Source(640, 360), 4.0)
    print("written", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("codec", [VideoCodec.H264, VideoCodec.VP8])
def test_killed_recording_leaves_a_playable_spool(codec: VideoCodec, tmp_path: Path) -> None:
    """4 s written, then kill -9 before close(): the spool plays and holds all but the last second or two."""
    path = tmp_path / "spool"
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, codec.name, str(path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "written\n"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    probe = ffprobe(path)
    assert {s["codec_type"] for s in probe["streams"]} == {"video", "audio"}
    decoded = decode(path)
    assert 2.0 <= decoded.last_video_s < 4.0 and 2.0 <= decoded.audio_s <= 4.1
    assert decoded.frames >= 60 and decoded.distinct_frames == decoded.frames
    assert decoded.flashes_s[:2] == pytest.approx([1.0, 2.0], abs=0.025)
