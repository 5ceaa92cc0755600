"""The interactive recording's HLS: segments ffprobe reads as H.264 + AAC + timed ID3 carrying the wall clock, the
playlist that lists them, the tar of both, and what a kill -9 mid-recording leaves."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from recordkit.recorder.outputs import copy_packet
from recordkit.recorder.outputs.hls import (
    PLAYLIST,
    TS_OFFSET_S,
    HlsOutput,
    _syncsafe,
    id3_tag,
    id3_wall_clock,
    package_hls,
)

FPS = 30
SAMPLE_RATE = 48_000
AAC_FRAME = 1024
# The meeting's wall clock at media time 0: 2026-03-02T10:00:00.250Z.
WALL0_S = 1_772_445_600.25


class Encoders:
    """The composite's encoders as the recorder holds them: H.264 (a keyframe every `gop` frames) and AAC in a
    null container, fed a moving picture and a 440 Hz tone."""

    def __init__(self, width: int = 320, height: int = 180, gop: int = FPS) -> None:
        self.container = av.open(os.devnull, "w", format="null")
        self.video = self.container.add_stream("libx264", rate=FPS)
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.video.codec_context.time_base = Fraction(1, FPS)
        self.video.codec_context.options = {
            "preset": "veryfast",
            "tune": "zerolatency",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
        }
        self.audio = self.container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        for stream in (self.video, self.audio):
            stream.codec_context.flags |= av.codec.context.Flags.global_header
        self.container.start_encoding()
        self.samples = 0

    def frame(self, index: int) -> av.VideoFrame:
        """Frame `index`: a grey level and a bar that both move, so every frame differs."""
        picture = np.full((self.video.height * 3 // 2, self.video.width), 16 + index % 200, np.uint8)
        column = index * 4 % self.video.width
        picture[: self.video.height, column : column + 8] = 235
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts, frame.time_base = index, Fraction(1, FPS)
        return frame

    def tone_until(self, end_s: float) -> Iterator[av.AudioFrame]:
        """AAC-sized frames of the tone up to media time `end_s`."""
        while self.samples + AAC_FRAME <= end_s * SAMPLE_RATE:
            at = np.arange(self.samples, self.samples + AAC_FRAME) / SAMPLE_RATE
            wave = (0.2 * np.sin(2 * np.pi * 440 * at)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, self.samples, Fraction(1, SAMPLE_RATE)
            self.samples += AAC_FRAME
            yield frame


def record(output: HlsOutput, encoders: Encoders, seconds: float, pause: tuple[float, float] = (0.0, 0.0)) -> None:
    """`seconds` of media through `output` as the recorder feeds it: each packet copied, video with its wall
    clock; then the encoders drained and the output closed. `pause`: (media time, seconds) of a pause, after
    which the wall clock is that many seconds further on."""
    output.open(encoders.video, encoders.audio)

    def video(packets: list[av.Packet]) -> None:
        for packet in packets:
            at_s = packet.pts / FPS
            output.write_video(copy_packet(packet), WALL0_S + at_s + (pause[1] if at_s >= pause[0] else 0.0))

    def audio(packets: list[av.Packet]) -> None:
        for packet in packets:
            output.write_audio(copy_packet(packet))

    for index in range(round(seconds * FPS)):
        video(encoders.video.encode(encoders.frame(index)))
        for frame in encoders.tone_until((index + 1) / FPS):
            audio(encoders.audio.encode(frame))
    video(encoders.video.encode(None))
    audio(encoders.audio.encode(None))
    output.close()


def ffprobe(path: Path, *options: str) -> dict[str, Any]:
    command = ["ffprobe", "-v", "error", *options, "-show_streams", "-show_format", "-of", "json", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)


def plays(path: Path) -> tuple[int, str]:
    """(video frames decoded, what FFmpeg complained about) decoding every frame of every stream, stopping at
    the first error."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-xerror", "-i", str(path), "-map", "0:v", "-map", "0:a", "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    frames = int(ffprobe(path, "-count_frames", "-select_streams", "v")["streams"][0]["nb_read_frames"])
    return frames, result.stderr if result.returncode == 0 else f"exit {result.returncode}: {result.stderr}"


def tags(path: Path) -> list[tuple[float, float | None]]:
    """(time, wall clock) of every timed-metadata packet of a segment."""
    with av.open(str(path)) as container:
        return [
            (float(packet.pts * packet.time_base), id3_wall_clock(bytes(packet)))
            for packet in container.demux(container.streams.data[0])
            if packet.pts is not None
        ]


def first_video_s(path: Path) -> float:
    with av.open(str(path)) as container:
        packet = next(p for p in container.demux(container.streams.video[0]) if p.pts is not None)
        return float(packet.pts * packet.time_base)


def listed(playlist_text: str) -> list[str]:
    return [line for line in playlist_text.splitlines() if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """25 s of media recorded to HLS: two whole segments and a half one."""
    directory = tmp_path_factory.mktemp("recorded") / "hls"
    record(HlsOutput(directory), Encoders(), 25.0)
    return directory


@pytest.mark.parametrize(
    ("size", "encoded"),
    [
        (0, b"\x00\x00\x00\x00"),
        (127, b"\x00\x00\x00\x7f"),
        (128, b"\x00\x00\x01\x00"),
        (255, b"\x00\x00\x01\x7f"),
        ((1 << 28) - 1, b"\x7f\x7f\x7f\x7f"),
    ],
)
def test_id3_sizes_are_syncsafe(size: int, encoded: bytes) -> None:
    assert _syncsafe(size) == encoded


def test_id3_size_beyond_28_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="28 bits"):
        _syncsafe(1 << 28)


def test_id3_tag_holds_the_wall_clock_to_the_millisecond() -> None:
    body = b"\x03wall_clock\x002026-03-02T10:00:00.250Z"
    frame = b"TXXX\x00\x00\x00" + bytes([len(body)]) + b"\x00\x00" + body
    assert id3_tag(WALL0_S) == b"ID3\x04\x00\x00\x00\x00\x00" + bytes([len(frame)]) + frame
    assert id3_wall_clock(id3_tag(WALL0_S + 0.0129)) == pytest.approx(WALL0_S + 0.012, abs=1e-6)
    assert id3_wall_clock(b"ID3\x03\x00\x00\x00\x00\x00\x00") is None  # ID3v2.3: not ours
    assert id3_wall_clock(b"ID3\x04\x00\x00\x00\x00\x00\x00") is None  # no frame at all


def test_ffmpeg_reads_the_id3_wall_clock(tmp_path: Path) -> None:
    """An independent reader: FFmpeg's ID3v2 parser, given the tag in front of an MP3 file."""
    mp3 = tmp_path / "tone.mp3"
    with av.open(str(mp3), "w", options={"id3v2_version": "0"}) as container:  # no tag of its own
        stream = container.add_stream("libmp3lame", rate=SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16p", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        container.mux([*stream.encode(frame), *stream.encode(None)])
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(id3_tag(WALL0_S) + mp3.read_bytes())
    assert ffprobe(tagged)["format"]["tags"] == {"wall_clock": "2026-03-02T10:00:00.250Z"}


def test_segments_are_h264_aac_and_timed_id3_of_ten_seconds(recorded: Path) -> None:
    assert sorted(path.name for path in recorded.iterdir()) == [
        PLAYLIST, "segment_00000.ts", "segment_00001.ts", "segment_00002.ts"
    ]  # fmt: skip
    for index, duration_s in enumerate([10.0, 10.0, 5.0]):
        segment = recorded / f"segment_{index:05d}.ts"
        probe = ffprobe(segment)
        assert probe["format"]["format_name"] == "mpegts"
        assert [(s["codec_type"], s["codec_name"]) for s in probe["streams"]] == [
            ("video", "h264"), ("audio", "aac"), ("data", "timed_id3")
        ]  # fmt: skip
        assert float(probe["format"]["duration"]) == pytest.approx(duration_s, abs=0.1)
        # Media time goes straight on from one segment to the next, 10 s later in the stream (no negative AAC
        # priming time in MPEG-TS).
        start_s = TS_OFFSET_S + 10.0 * index
        assert first_video_s(segment) == pytest.approx(start_s)
        # One tag, at the segment's first frame, holding that frame's wall-clock time.
        assert tags(segment) == [(pytest.approx(start_s), pytest.approx(WALL0_S + 10.0 * index, abs=0.001))]
        assert plays(segment) == (round(duration_s * FPS), "")


def test_playlist_lists_the_segments_with_their_wall_clock(recorded: Path) -> None:
    assert (recorded / PLAYLIST).read_text() == textwrap.dedent(
        """\
        #EXTM3U
        #EXT-X-VERSION:3
        #EXT-X-TARGETDURATION:10
        #EXT-X-MEDIA-SEQUENCE:0
        #EXT-X-PLAYLIST-TYPE:VOD
        #EXT-X-PROGRAM-DATE-TIME:2026-03-02T10:00:00.250Z
        #EXTINF:10.000,
        segment_00000.ts
        #EXT-X-PROGRAM-DATE-TIME:2026-03-02T10:00:10.250Z
        #EXTINF:10.000,
        segment_00001.ts
        #EXT-X-PROGRAM-DATE-TIME:2026-03-02T10:00:20.250Z
        #EXTINF:5.000,
        segment_00002.ts
        #EXT-X-ENDLIST
        """
    )


def test_tar_holds_the_playlist_and_the_segments(recorded: Path, tmp_path: Path) -> None:
    directory = tmp_path / "hls"
    shutil.copytree(recorded, directory)
    tar_path = tmp_path / "recording.tar"
    size = package_hls(directory, tar_path)
    assert size == tar_path.stat().st_size
    assert not directory.exists() and not tar_path.with_name("recording.tar.part").exists()
    with tarfile.open(tar_path) as tar:
        assert tar.getnames() == [PLAYLIST, "segment_00000.ts", "segment_00001.ts", "segment_00002.ts"]
        contents = {member.name: tar.extractfile(member).read() for member in tar}  # type: ignore[union-attr]
    # The playlist rebuilt from the segments is the one the recording wrote.
    assert contents == {path.name: path.read_bytes() for path in recorded.iterdir()}
    # A player reads the segments through the playlist as one stream: every frame, nothing corrupt at the cuts.
    unpacked = tmp_path / "unpacked"
    with tarfile.open(tar_path) as tar:
        tar.extractall(unpacked, filter="data")
    (video,) = ffprobe(unpacked / PLAYLIST, "-count_frames", "-select_streams", "v")["streams"]
    assert int(video["nb_read_frames"]) == 25 * FPS
    assert package_hls(directory, tar_path) == size  # a second call (a retried recovery) finds it done
    assert package_hls(tmp_path / "never", tmp_path / "never.tar") is None


def test_segment_is_cut_at_the_first_keyframe_after_its_ten_seconds(tmp_path: Path) -> None:
    """A keyframe every 1.5 s: the cuts land on the keyframes at 10.5 s and 21 s, and the next boundary stays at
    20 s (a multiple of 10 s of media), not 10 s after the late cut."""
    directory = tmp_path / "hls"
    output = HlsOutput(directory)
    record(output, Encoders(gop=45), 24.0)
    assert [(s.name, s.duration_s) for s in output.segments] == [
        ("segment_00000.ts", 10.5), ("segment_00001.ts", 10.5), ("segment_00002.ts", 3.0)
    ]  # fmt: skip
    text = (directory / PLAYLIST).read_text()
    assert "#EXT-X-TARGETDURATION:11\n" in text and "#EXT-X-PROGRAM-DATE-TIME:2026-03-02T10:00:21.250Z\n" in text
    package_hls(directory, tmp_path / "recording.tar")
    with tarfile.open(tmp_path / "recording.tar") as tar:  # the durations read back from the segments
        assert tar.extractfile(PLAYLIST).read().decode() == text  # type: ignore[union-attr]


def test_the_first_frame_after_a_pause_gets_its_wall_clock_too(tmp_path: Path) -> None:
    """Paused 7.3 s at media time 4.5 s: the media goes straight on, the wall clock jumps, and a tag says so."""
    directory = tmp_path / "hls"
    record(HlsOutput(directory), Encoders(), 12.0, pause=(4.5, 7.3))
    assert tags(directory / "segment_00000.ts") == [
        (pytest.approx(TS_OFFSET_S), pytest.approx(WALL0_S, abs=0.001)),
        (pytest.approx(TS_OFFSET_S + 4.5), pytest.approx(WALL0_S + 4.5 + 7.3, abs=0.001)),
    ]
    assert tags(directory / "segment_00001.ts") == [
        (pytest.approx(TS_OFFSET_S + 10.0), pytest.approx(WALL0_S + 10.0 + 7.3, abs=0.001))
    ]
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-03-02T10:00:17.550Z\n#EXTINF:2.000," in (directory / PLAYLIST).read_text()


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from recordkit.recorder.outputs.hls import HlsOutput
    from tests.recorder.test_hls import Encoders, record

    record(HlsOutput(Path(sys.argv[1])), Encoders(), 600.0)
    """
)


def test_kill_leaves_a_tar_whose_segments_all_play(tmp_path: Path) -> None:
    """The writer is killed (-9) while it muxes, once it has finished three segments: the directory holds complete
    segments and a playlist listing them, and the tar made of it plays segment by segment."""
    directory = tmp_path / "hls"
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(directory)], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while not (directory / "segment_00002.ts").exists():
            assert process.poll() is None and time.monotonic() < deadline, "the writer never got to segment 2"
            time.sleep(0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL

    left = sorted(path.name for path in directory.iterdir())
    complete = [name for name in left if name.endswith(".ts")]
    assert len(complete) >= 3 and complete == [f"segment_{index:05d}.ts" for index in range(len(complete))]
    on_disk_playlist = (directory / PLAYLIST).read_text()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT\n" in on_disk_playlist
    # Every segment the playlist lists is complete; at most the last complete one is not listed yet.
    assert listed(on_disk_playlist) in (complete, complete[:-1])

    tar_path = tmp_path / "recording.tar"
    package_hls(directory, tar_path)
    unpacked = tmp_path / "unpacked"
    with tarfile.open(tar_path) as tar:
        assert tar.getnames() == [PLAYLIST, *complete]
        tar.extractall(unpacked, filter="data")
    tar_playlist = (unpacked / PLAYLIST).read_text()
    assert listed(tar_playlist) == complete and tar_playlist.endswith("#EXT-X-ENDLIST\n")
    assert tar_playlist.count("#EXTINF:10.000,\n") == len(complete)
    for index, name in enumerate(complete):
        assert [s["codec_name"] for s in ffprobe(unpacked / name)["streams"]] == ["h264", "aac", "timed_id3"]
        assert plays(unpacked / name) == (10 * FPS, "")
        assert tags(unpacked / name)[0][1] == pytest.approx(WALL0_S + 10.0 * index, abs=0.001)
