"""Finding flashes and beeps again after codecs, files, scaling, compositing and noise."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest

from recordkit.bot.marks import (
    BeepDetector,
    Region,
    audio_samples,
    detect_beeps,
    detect_flashes,
    offsets_from_marks_ms,
    pair_marks,
)
from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock, SyntheticVideoTrack

SECONDS = 4
MARKS_S = [1.0, 2.0, 3.0, 4.0]
FRAME_S = 1 / 30
BEEP_TOLERANCE_S = 0.002


def synthetic_video(seconds: float = SECONDS + 0.2, label: str = "bot") -> list[av.VideoFrame]:
    video = SyntheticVideoTrack(SyntheticClock(), label=label)
    return [video.frame_at(index) for index in range(round(seconds * 30))]


def synthetic_audio(seconds: float = SECONDS + 0.2, sample_rate: int = 48_000) -> list[av.AudioFrame]:
    audio = SyntheticAudioTrack(SyntheticClock(), sample_rate=sample_rate)
    return [audio.frame_at(index) for index in range(round(seconds * 50))]


def assert_marks(found_s: list[float], tolerance_s: float, expected_s: list[float] = MARKS_S) -> None:
    assert len(found_s) == len(expected_s), found_s
    for found, expected in zip(found_s, expected_s, strict=True):
        assert abs(found - expected) <= tolerance_s, (found, expected)


def vp8_round_trip(frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
    """Encode with the settings aiortc's VP8 encoder uses for real-time sending, then decode."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
    encoder.bit_rate = 500_000
    encoder.time_base = fractions.Fraction(1, 90_000)
    encoder.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0"}
    decoder = av.CodecContext.create("vp8", "r")
    return [decoded for frame in frames for packet in encoder.encode(frame) for decoded in decoder.decode(packet)]


def opus_round_trip(frames: list[av.AudioFrame]) -> list[av.AudioFrame]:
    """Encode to Opus in 20 ms packets (48 kHz stereo, as WebRTC sends it), then decode."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48_000, "stereo", "s16"
    encoder.time_base = fractions.Fraction(1, 48_000)
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=48_000, frame_size=960)
    decoder = av.CodecContext.create("opus", "r")
    decoder.sample_rate, decoder.layout = 48_000, "stereo"
    decoded = []
    for frame in frames:
        for chunk in resampler.resample(frame):
            for packet in encoder.encode(chunk):
                decoded += decoder.decode(packet)
    return decoded


@pytest.fixture(scope="module")
def vp8_video() -> list[av.VideoFrame]:
    """Three seconds of synthetic video after a VP8 round trip (shared: encoding is the slow part here)."""
    return vp8_round_trip(synthetic_video(3.2))


def test_raw_synthetic_marks_are_found_exactly() -> None:
    assert detect_flashes(synthetic_video()) == MARKS_S
    assert_marks(detect_beeps(synthetic_audio()), 0.0001)


def test_marks_survive_vp8_and_opus(vp8_video: list[av.VideoFrame]) -> None:
    assert_marks(detect_flashes(vp8_video), FRAME_S, MARKS_S[:3])
    audio = opus_round_trip(synthetic_audio())
    assert audio[0].format.name == "fltp" and len(audio[0].layout.channels) == 2
    # Decoded Opus keeps the encoder's pts (starting at −312 samples of look-ahead), so onsets land on time.
    assert_marks(detect_beeps(audio), BEEP_TOLERANCE_S)


def test_marks_survive_h264_and_aac_in_an_mp4_file(tmp_path: Path) -> None:
    path = tmp_path / "marks.mp4"
    video, audio = synthetic_video(), synthetic_audio()
    with av.open(str(path), "w") as container:
        video_stream = container.add_stream(
            "libx264", rate=30, options={"preset": "veryfast", "tune": "zerolatency", "crf": "23"}
        )
        video_stream.width, video_stream.height, video_stream.pix_fmt = 640, 360, "yuv420p"
        video_stream.time_base = fractions.Fraction(1, 90_000)
        audio_stream = container.add_stream("aac", rate=48_000, layout="mono")
        audio_stream.bit_rate = 128_000
        # Interleave by time as a muxer expects.
        for _, frame in sorted([(float(f.pts * f.time_base), f) for f in video + audio], key=lambda item: item[0]):
            stream = video_stream if isinstance(frame, av.VideoFrame) else audio_stream
            container.mux(stream.encode(frame))
        container.mux(video_stream.encode())
        container.mux(audio_stream.encode())
    with av.open(str(path)) as container:
        assert_marks(detect_flashes(container.decode(video=0)), FRAME_S)
    with av.open(str(path)) as container:
        assert_marks(detect_beeps(container.decode(audio=0)), BEEP_TOLERANCE_S)


def test_flashes_are_found_in_a_scaled_down_tile_of_a_grid(vp8_video: list[av.VideoFrame]) -> None:
    """A recorder's 2×2 grid: our participant bottom-right at half size, another one flashing half a second
    later top-left. The region sees only ours."""
    ours = vp8_video
    theirs = synthetic_video(3.7, label="other")[15:]
    grid = []
    for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
        canvas = np.full((360, 640, 3), 40, np.uint8)
        canvas[180:, 320:] = mine.reformat(width=320, height=180, format="rgb24").to_ndarray()
        canvas[:180, :320] = other.reformat(width=320, height=180, format="rgb24").to_ndarray()
        frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
        frame.pts, frame.time_base = index * 3000, fractions.Fraction(1, 90_000)
        grid.append(frame)
    tile = Region.from_pixels(320, 180, 320, 180, 640, 360)
    assert_marks(detect_flashes(grid, region=tile), FRAME_S, MARKS_S[:3])
    theirs_tile = Region(0, 0, 0.5, 0.5)
    assert_marks(detect_flashes(grid, region=theirs_tile), FRAME_S, [0.5, 1.5, 2.5])
    assert_marks(detect_flashes(grid), FRAME_S, [])  # neither flash whitens the whole grid
    # The same grid scaled down again (a thumbnail) still works: regions are fractions of the frame.
    small = [frame.reformat(width=320, height=180, format="yuv420p") for frame in grid]
    assert_marks(detect_flashes(small, region=tile), FRAME_S, MARKS_S[:3])


def test_marks_are_found_under_noise() -> None:
    rng = np.random.default_rng(7)
    noisy_video = []
    for frame in synthetic_video():
        planes = frame.to_ndarray().astype(np.int16)
        planes[:360] += rng.normal(0, 25, (360, 640)).astype(np.int16)
        noisy = av.VideoFrame.from_ndarray(np.clip(planes, 0, 255).astype(np.uint8), format="yuv420p")
        noisy.pts, noisy.time_base = frame.pts, frame.time_base
        noisy_video.append(noisy)
    assert_marks(detect_flashes(noisy_video), FRAME_S)
    samples = np.concatenate([audio_samples(frame) for frame in synthetic_audio()])
    noise = rng.normal(0, 0.05, samples.size)  # −26 dBFS white noise, 20 dB under the beep
    hum = 0.1 * np.sin(2 * np.pi * 50 * np.arange(samples.size) / 48_000)
    assert_marks(detect_beeps(samples + noise + hum, 48_000), BEEP_TOLERANCE_S)


def test_only_long_enough_tones_near_1_khz_are_beeps() -> None:
    rate = 48_000
    t = np.arange(rate * 3) / rate
    signal = np.zeros_like(t)
    signal[rate : rate + 4800] = 0.5 * np.sin(2 * np.pi * 3000 * t[:4800])  # another pitch
    signal[2 * rate : 2 * rate + 480] = 0.5 * np.sin(2 * np.pi * 1000 * t[:480])  # a 10 ms blip
    signal[int(2.5 * rate) : int(2.6 * rate)] = 0.005 * np.sin(2 * np.pi * 1000 * t[:4800])  # too quiet
    assert detect_beeps(signal, rate) == []


def test_bots_with_different_pitches_can_be_told_apart_in_a_mix() -> None:
    clock = SyntheticClock()
    low, high = (SyntheticAudioTrack(clock, beep_frequency_hz=hz) for hz in (1000, 1500))
    low_samples = np.concatenate([audio_samples(low.frame_at(i)) for i in range(160)])
    high_samples = np.concatenate([audio_samples(high.frame_at(i)) for i in range(160)])
    # The second bot's clock started 300 ms later; the mixer halves each to leave headroom.
    late = int(0.3 * 48_000)
    mix = (low_samples + np.concatenate([np.zeros(late), high_samples[:-late]])) / 2
    assert_marks(detect_beeps(mix, 48_000), BEEP_TOLERANCE_S, [1.0, 2.0, 3.0])
    detector = BeepDetector(48_000, frequency_hz=1500)
    detector.push(mix)
    assert_marks(detector.onsets_s, BEEP_TOLERANCE_S, [1.3, 2.3])


def test_chunk_size_and_sample_rate_do_not_change_the_onsets() -> None:
    for rate in (48_000, 44_100, 16_000):
        samples = np.concatenate([audio_samples(frame) for frame in synthetic_audio(3.3, sample_rate=rate)])
        whole = detect_beeps(samples, rate, start_s=10.0)
        assert_marks(whole, 0.0001, [11.0, 12.0, 13.0])
        detector = BeepDetector(rate)
        rng = np.random.default_rng(rate)
        position = 0
        while position < samples.size:
            size = int(rng.integers(1, 4000))
            detector.push(samples[position : position + size], 10.0 + position / rate)
            position += size
        assert detector.onsets_s == pytest.approx(whole, abs=1e-9)


def test_caller_times_replace_pts() -> None:
    video, audio = synthetic_video(2.2), synthetic_audio(2.2)
    assert detect_flashes(video, times_s=[100 + i / 30 for i in range(len(video))]) == pytest.approx([101, 102])
    assert_marks(detect_beeps(audio, times_s=[100 + i / 50 for i in range(len(audio))]), 0.0001, [101, 102])


@pytest.mark.parametrize(
    ("flashes", "beeps", "offsets", "lost_flashes", "lost_beeps"),
    [
        ([1, 2, 3], [1.02, 2.03, 3.01], [20, 30, 10], [], []),
        ([1, 2, 3], [0.99, 3.04], [-10, 40], [2], []),
        ([1, 2], [1.0, 1.3, 2.0], [0, 0], [], [1.3]),
        ([1], [1.6], [], [1], [1.6]),
        ([], [1.0], [], [], [1.0]),
    ],
)
def test_pairing_flashes_with_beeps(
    flashes: list[float], beeps: list[float], offsets: list[float], lost_flashes: list[float], lost_beeps: list[float]
) -> None:
    report = pair_marks(flashes, beeps)
    assert report.offsets_ms == pytest.approx(offsets)
    assert report.unpaired_flashes_s == lost_flashes
    assert report.unpaired_beeps_s == lost_beeps
    assert report.pairs == len(offsets)


def test_sync_summary() -> None:
    report = pair_marks([1, 2, 3, 4], [1.010, 2.012, 2.975, 4.011])
    assert report.median_ms == pytest.approx(10.5)
    assert report.worst_ms == pytest.approx(-25)
    assert pair_marks([], []).median_ms is None and pair_marks([], []).worst_ms is None
    assert offsets_from_marks_ms([100.03, 101.97, 102.5], origin_s=99.0) == pytest.approx([30, -30, -500])


def test_regions_are_fractions_of_the_frame() -> None:
    region = Region.from_pixels(320, 180, 320, 180, 640, 360)
    assert region == Region(0.5, 0.5, 0.5, 0.5)
    assert region.crop(np.zeros((90, 160))).shape == (45, 80)
    for bad in [(0.5, 0.5, 0.6, 0.1), (-0.1, 0, 0.5, 0.5), (0, 0, 0, 0.5)]:
        with pytest.raises(ValueError):
            Region(*bad)
