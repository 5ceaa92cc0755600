"""Packets into files as received (issue 6): the bitstream facts the muxer needs, and files that play with the
sender's timing, gaps included."""

from __future__ import annotations

import fractions
import json
import subprocess
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from recordkit.meetings.media.receiving import EncodedFrame, is_keyframe
from recordkit.recorder.passthrough import (
    PassthroughFile,
    muxing,
    opus_head,
    opus_is_stereo,
    opus_samples,
    vp8_dimensions,
)
from tests.support.media import encode_opus, encode_vp8

AUDIO_TB = fractions.Fraction(1, 48_000)
VIDEO_TB = fractions.Fraction(1, 90_000)


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(out)


@pytest.mark.parametrize(
    ("packet", "samples"),
    [
        (bytes([0xF8, 0xFF, 0xFE]), 960),  # CELT fullband 20 ms, one frame
        (bytes([0x78, 0x00]), 960),  # hybrid fullband 20 ms (config 15)
        (bytes([0x00, 0x00]), 480),  # SILK narrowband 10 ms (config 0)
        (bytes([0x08, 0x00]), 960),  # SILK narrowband 20 ms (config 1)
        (bytes([0x18, 0x00]), 2880),  # SILK narrowband 60 ms
        (bytes([0xE0 | 0x01, 0x00]), 240),  # CELT 2.5 ms, two equal frames
        (bytes([0xFB, 0x03, 0x00]), 2880),  # CELT 20 ms, code 3 with three frames
        (bytes([0xFB, 0x07, 0x00]), 0),  # seven 20 ms frames is over 120 ms: invalid
        (b"", 0),
        (bytes([0xFB]), 0),  # code 3 without its frame count
    ],
)
def test_opus_samples_follow_the_toc(packet: bytes, samples: int) -> None:
    assert opus_samples(packet) == samples


def test_opus_head_and_channels() -> None:
    head = opus_head(1)
    assert head[:8] == b"OpusHead" and len(head) == 19
    assert (head[8], head[9], int.from_bytes(head[10:12], "little"), int.from_bytes(head[12:16], "little")) == (
        1, 1, 0, 48_000
    )  # fmt: skip
    assert opus_is_stereo(bytes([0xFC])) and not opus_is_stereo(bytes([0xF8]))


def test_vp8_dimensions_come_from_keyframes_only() -> None:
    frames = encode_vp8(frames=3, width=320, height=180, gop=15)
    assert vp8_dimensions(frames[0]) == (320, 180)
    assert vp8_dimensions(frames[1]) is None


def test_only_opus_vp8_and_h264_are_stored_as_is() -> None:
    assert muxing("audio/opus").extension == "webm"  # type: ignore[union-attr]
    assert muxing("video/VP8").extension == "webm"  # type: ignore[union-attr]
    assert muxing("video/H264").extension == "mp4"  # type: ignore[union-attr]
    assert muxing("video/VP9") is None and muxing("audio/PCMU") is None


def test_opus_file_keeps_the_senders_gaps(tmp_path: Path) -> None:
    packets = encode_opus(100)
    path = tmp_path / "a.webm"
    written: PassthroughFile | None = None
    for index, data in enumerate(packets):
        if 40 <= index < 60:
            continue  # 400 ms the sender never sent
        frame = EncodedFrame(data, 7_000 + index * 960, AUDIO_TB, True, 1_000.0 + index * 0.02)
        written = written or PassthroughFile(path, "audio/opus", frame)
        assert written.write(frame)
    assert written is not None
    assert not written.write(EncodedFrame(packets[0], 7_000, AUDIO_TB, True, 1_000.0)), "no going back in time"
    written.close()
    assert written.duration_s == pytest.approx(2.0) and written.origin_wall_s == pytest.approx(1_000.0)
    stream = probe(path)["streams"][0]
    assert (stream["codec_name"], int(stream["sample_rate"]), stream["channels"]) == ("opus", 48_000, 2)
    assert float(probe(path)["format"]["duration"]) == pytest.approx(2.0)
    with av.open(str(path)) as container:
        starts = [float(frame.time) for frame in container.decode(audio=0)]
    assert len(starts) == 80 and starts[0] == 0.0
    assert max(np.diff(starts)) == pytest.approx(0.42), "the missing 400 ms stay missing, not filled"


def test_vp8_file_starts_at_its_keyframe_and_plays(tmp_path: Path) -> None:
    packets = encode_vp8(frames=60, gop=30)
    path = tmp_path / "v.webm"
    written: PassthroughFile | None = None
    for index, data in enumerate(packets):
        frame = EncodedFrame(data, 90_000 + index * 3000, VIDEO_TB, is_keyframe("video/vp8", data), 5.0 + index / 30)
        written = written or PassthroughFile(path, "video/VP8", frame)
        written.write(frame)
    assert written is not None
    written.close()
    assert written.duration_s == pytest.approx(2.0)
    stream = probe(path)["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("vp8", 320, 180)
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 60 and frames[0].key_frame


def test_h264_goes_into_mp4_with_its_parameter_sets(tmp_path: Path) -> None:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 180, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    packets: list[bytes] = []
    for index in range(30):
        image = av.VideoFrame.from_ndarray(np.full((180, 320, 3), index * 5, np.uint8), format="rgb24")
        picture = image.reformat(format="yuv420p")
        picture.pts = index
        packets += [bytes(packet) for packet in encoder.encode(picture)]
    packets += [bytes(packet) for packet in encoder.encode(None)]
    path = tmp_path / "h.mp4"
    written: PassthroughFile | None = None
    for index, data in enumerate(packets):
        frame = EncodedFrame(data, index * 3000, VIDEO_TB, is_keyframe("video/h264", data), index / 30)
        written = written or PassthroughFile(path, "video/H264", frame)
        written.write(frame)
    assert written is not None
    written.close()
    stream = probe(path)["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 320, 180)
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 30


def test_a_file_cannot_start_without_a_keyframe_or_with_another_codec(tmp_path: Path) -> None:
    inter = encode_vp8(frames=2)[1]
    with pytest.raises(ValueError, match="keyframe"):
        PassthroughFile(tmp_path / "x.webm", "video/VP8", EncodedFrame(inter, 0, VIDEO_TB, False, 0.0))
    with pytest.raises(ValueError, match="transcoding"):
        PassthroughFile(tmp_path / "y.webm", "audio/PCMU", EncodedFrame(b"\x00", 0, AUDIO_TB, True, 0.0))
