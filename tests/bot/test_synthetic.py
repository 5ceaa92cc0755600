"""The synthetic tracks: marks on whole seconds of one clock, a readable moving pattern, real-time pacing."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from recordkit.bitmap_font import text_mask
from recordkit.bot.marks import audio_samples, detect_beeps, detect_flashes, luma, mean_luma
from recordkit.bot.synthetic import (
    BEEP_AMPLITUDE,
    PATTERN_MAX_LUMA,
    EncodedLoopAudioTrack,
    EncodedLoopVideoTrack,
    SyntheticAudioTrack,
    SyntheticClock,
    SyntheticVideoTrack,
    _VideoPattern,
)


def read_frame_number(frame_luma: np.ndarray) -> str:
    """Read the zero-padded frame number back from the pixels, matching each digit cell against the font."""
    scale, margin = _VideoPattern.DIGIT_SCALE, _VideoPattern.MARGIN
    glyphs = [text_mask(str(d), scale) for d in range(10)]
    height, width = glyphs[0].shape
    top, left, step = margin + scale, margin + scale, width + scale
    digits = []
    for position in range(_VideoPattern.DIGITS):
        cell = frame_luma[top : top + height, left + position * step : left + position * step + width] > 100
        digits.append(str(int(np.argmax([np.count_nonzero(cell == glyph) for glyph in glyphs]))))
    return "".join(digits)


def test_flash_frames_are_exactly_the_whole_seconds() -> None:
    video = SyntheticVideoTrack(SyntheticClock(), fps=30)
    flashes = [index for index in range(0, 95) if mean_luma(video.frame_at(index)) > 250]
    assert flashes == [30, 60, 90]
    frame = video.frame_at(60)
    assert frame.pts == 180_000
    assert frame.time_base == fractions.Fraction(1, 90_000)
    assert (frame.width, frame.height, frame.format.name) == (640, 360, "yuv420p")
    assert luma(frame).min() == 255


def test_beeps_start_on_the_exact_sample_of_each_whole_second() -> None:
    audio = SyntheticAudioTrack(SyntheticClock(), sample_rate=48_000)
    samples = np.concatenate([audio_samples(audio.frame_at(index)) for index in range(110)])
    n = np.arange(4800)
    expected_beep = BEEP_AMPLITUDE * np.sin(2 * np.pi * 1000 * n / 48_000)
    for second in (1, 2):
        start = second * 48_000
        assert np.abs(samples[start - 43_200 : start]).max() < 0.001  # quiet up to the mark…
        assert samples[start : start + 4800] == pytest.approx(expected_beep, abs=0.001)  # …the beep from it…
        assert np.abs(samples[start + 4800 : start + 4900]).max() < 0.001  # …for exactly 100 ms
    assert np.abs(samples[:48_000]).max() < 0.001  # no beep at the clock's zero
    frame = audio.frame_at(50)
    assert (frame.pts, frame.samples, frame.sample_rate, frame.format.name) == (48_000, 960, 48_000, "s16")


def test_audio_and_video_marks_agree_in_time() -> None:
    clock = SyntheticClock()
    video, audio = SyntheticVideoTrack(clock, fps=25), SyntheticAudioTrack(clock, sample_rate=44_100, channels=2)
    flash = video.frame_at(50)
    beep = audio.frame_at(100)
    assert float(flash.pts * flash.time_base) == float(beep.pts * beep.time_base) == 2.0
    assert audio_samples(audio.frame_at(99)).max() < 0.001
    assert audio_samples(beep).max() > 0.4
    assert beep.layout.name == "stereo"


def test_consecutive_frames_differ_and_show_their_number() -> None:
    video = SyntheticVideoTrack(SyntheticClock(), label="bot one")
    frames = [luma(video.frame_at(index)).copy() for index in (1234, 1235)]
    assert np.count_nonzero(frames[0] != frames[1]) > 10_000
    assert read_frame_number(frames[0]) == "001234"
    assert read_frame_number(frames[1]) == "001235"
    # Nothing but a flash may look like one: the pattern stays below the flash detector's threshold everywhere.
    assert max(int(luma(video.frame_at(index)).max()) for index in range(1, 30)) <= PATTERN_MAX_LUMA


def test_other_sizes_and_bad_parameters() -> None:
    clock = SyntheticClock()
    small = SyntheticVideoTrack(clock, width=160, height=90, fps=15, label="a very long label that cannot fit")
    assert (small.frame_at(3).width, small.frame_at(3).height) == (160, 90)
    assert mean_luma(small.frame_at(15)) == 255
    with pytest.raises(ValueError):
        SyntheticVideoTrack(clock, width=641)
    with pytest.raises(ValueError):
        SyntheticVideoTrack(clock, fps=7)
    with pytest.raises(ValueError):
        SyntheticAudioTrack(clock, sample_rate=44_110)


async def test_tracks_keep_real_time_from_the_clock() -> None:
    clock = SyntheticClock()
    clock.start_monotonic_s -= 0.9  # join 0.9 s into the clock: the next whole second is 100 ms away
    video, audio = SyntheticVideoTrack(clock), SyntheticAudioTrack(clock)

    async def take(track: SyntheticVideoTrack | SyntheticAudioTrack, count: int) -> list[tuple[float, float]]:
        times = []
        for _ in range(count):
            frame = await track.recv()
            times.append((float(frame.pts * frame.time_base), clock.now_s()))
        return times

    started_s = clock.now_s()
    video_times, audio_times = await asyncio.gather(take(video, 12), take(audio, 20))
    # Late starters begin at the current slot, not at zero: every frame on its grid, none missing, and the
    # whole second (the mark) where it belongs.
    for times, period_s in ((video_times, 1 / 30), (audio_times, 0.02)):
        first_s = times[0][0]
        assert started_s <= first_s < started_s + period_s + 0.02
        assert [t for t, _ in times] == pytest.approx([first_s + i * period_s for i in range(len(times))])
        assert any(t == pytest.approx(1.0) for t, _ in times)
        # Each frame is handed out at (never before) its time; how late depends on the machine's load.
        for pts_s, at_s in times:
            assert 0 <= at_s - pts_s < 0.1
    assert video.frames_sent == 12 and audio.frames_sent == 20


async def test_a_consumer_that_falls_behind_skips_ahead_instead_of_bursting() -> None:
    clock = SyntheticClock()
    video = SyntheticVideoTrack(clock)
    first = await video.recv()
    clock.start_monotonic_s -= 2.0  # as if the consumer stalled for two seconds
    second = await video.recv()
    assert second.pts - first.pts >= 59 * 3000
    assert video.frames_skipped >= 59
    video.stop()
    with pytest.raises(MediaStreamError):
        await video.recv()


def test_the_pre_encoded_loops_decode_to_the_same_marks() -> None:
    clock = SyntheticClock()
    video, audio = EncodedLoopVideoTrack(clock, label="loop"), EncodedLoopAudioTrack(clock)
    vp8 = av.CodecContext.create("vp8", "r")
    # Start on a whole second, as the track does: that packet is a keyframe, so decoding can start there.
    pictures = [frame for index in range(30, 30 * 4 + 1) for frame in vp8.decode(video.packet_at(index))]
    assert len(pictures) == 91
    assert detect_flashes(pictures) == [1.0, 2.0, 3.0, 4.0]
    assert [_is_vp8_keyframe(payload) for payload in video.payloads] == [True] + [False] * 29
    assert read_frame_number(luma(pictures[7]).copy()) == "000007"  # counts within the second
    opus = av.CodecContext.create("opus", "r")
    opus.sample_rate, opus.layout = 48_000, "stereo"
    sounds = [frame for index in range(10, 50 * 4 + 10) for frame in opus.decode(audio.packet_at(index))]
    onsets = detect_beeps(sounds)
    assert len(onsets) == 4
    # Packets keep the encoder's timing: beeps decode on their whole second, with no look-ahead delay.
    for onset, expected in zip(onsets, [1.0, 2.0, 3.0, 4.0], strict=True):
        assert abs(onset - expected) < 0.002


def _is_vp8_keyframe(payload: bytes) -> bool:
    return not payload[0] & 0x01  # VP8 frame tag: bit 0 is 0 for key frames


async def test_the_pre_encoded_video_starts_on_a_whole_second() -> None:
    clock = SyntheticClock()
    video = EncodedLoopVideoTrack(clock, width=160, height=90)
    clock.start_monotonic_s = time.monotonic() - 0.95  # encoding took a while: start 0.95 s in from now
    first, second = await video.recv(), await video.recv()
    assert (first.pts, second.pts) == (90_000, 93_000)
    assert _is_vp8_keyframe(bytes(first)) and not _is_vp8_keyframe(bytes(second))
