"""The audio mix: placed by time, summed, resampled to 48 kHz, and never clipped."""

from __future__ import annotations

import av
import numpy as np
import pytest

from recordkit.bot.marks import BeepDetector
from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock
from recordkit.recorder.mixer import CEILING, Mixer

RATE = 48_000
FULL_SCALE = 32767


def tone(frequency_hz: float, amplitude: float, start_s: float, duration_s: float, rate: int = RATE) -> np.ndarray:
    """Float samples of a sine, timed from the timeline's origin so consecutive chunks join seamlessly."""
    n = np.arange(round(start_s * rate), round((start_s + duration_s) * rate))
    return amplitude * np.sin(2 * np.pi * frequency_hz * n / rate)


def s16_frame(samples: np.ndarray, rate: int = RATE, channels: int = 1) -> av.AudioFrame:
    """A packed s16 frame, as aiortc's decoders produce them."""
    data = np.repeat(np.round(samples * FULL_SCALE).astype(np.int16), channels).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono" if channels == 1 else "stereo")
    frame.sample_rate = rate
    return frame


def push_tone(
    mixer: Mixer, who: str, frequency_hz: float, amplitude: float, start_s: float, duration_s: float, rate: int = RATE
) -> None:
    """Push a tone in 20 ms frames."""
    for k in range(round(duration_s / 0.02)):
        at_s = start_s + k * 0.02
        mixer.push(who, s16_frame(tone(frequency_hz, amplitude, at_s, 0.02, rate), rate), at_s)


def mix_all(mixer: Mixer, duration_s: float, block: int = 960) -> np.ndarray:
    blocks = [mixer.mix(k * block / RATE, block) for k in range(round(duration_s * RATE) // block)]
    return np.concatenate(blocks, axis=1)


def test_one_participant_passes_through_unchanged_on_both_channels() -> None:
    mixer = Mixer(channels=2)
    push_tone(mixer, "a", 440, 0.5, 0.0, 0.2)
    out = mix_all(mixer, 0.2)
    expected = np.round(tone(440, 0.5, 0.0, 0.2) * FULL_SCALE)
    assert out.dtype == np.int16 and out.shape == (2, 9600)
    assert np.abs(out[0] - expected).max() <= 1 and np.array_equal(out[0], out[1])


def test_frames_are_placed_by_time_not_by_arrival() -> None:
    forward, backward = Mixer(channels=1), Mixer(channels=1)
    frames = [(k * 0.02 + 0.1, s16_frame(tone(300, 0.3, k * 0.02 + 0.1, 0.02))) for k in range(10)]
    for at_s, frame in frames:
        forward.push("a", frame, at_s)
    for at_s, frame in reversed(frames):
        backward.push("a", frame, at_s)
    out_forward, out_backward = mix_all(forward, 0.4), mix_all(backward, 0.4)
    assert np.array_equal(out_forward, out_backward)
    assert not out_forward[0, :4800].any()  # nothing before 0.1 s
    assert np.count_nonzero(out_forward[0, 4800:14400]) > 9000
    assert not out_forward[0, 14400:].any()  # missing input after 0.3 s is silence


def test_participants_are_summed() -> None:
    mixer = Mixer(channels=1)
    push_tone(mixer, "a", 300, 0.2, 0.0, 0.2)
    push_tone(mixer, "b", 500, 0.3, 0.0, 0.2)
    out = mix_all(mixer, 0.2)
    expected = np.round((tone(300, 0.2, 0, 0.2) + tone(500, 0.3, 0, 0.2)) * FULL_SCALE)
    assert np.abs(out[0] - expected).max() <= 2


def test_two_full_scale_sines_never_clip_and_the_gain_is_smooth() -> None:
    mixer = Mixer(channels=2)
    push_tone(mixer, "a", 440, 1.0, 0.0, 1.0)
    push_tone(mixer, "b", 554, 1.0, 0.0, 1.0)
    out = mix_all(mixer, 1.0).astype(np.int32)
    assert np.abs(out).max() <= round(CEILING * FULL_SCALE)
    # The limiter scales the waveform instead of flattening it: only the crests of the sum's beats (114 a
    # second) touch the ceiling, where a clipper would flatten a third of the samples.
    at_ceiling = np.count_nonzero(np.abs(out[0]) >= round(CEILING * FULL_SCALE) - 1)
    over = np.count_nonzero(np.abs(tone(440, 1.0, 0, 1.0) + tone(554, 1.0, 0, 1.0)) > CEILING)
    assert at_ceiling < 300 and over > 15000
    # It is not a brutal fixed cut either: the quieter parts of the sum stay loud.
    assert np.sqrt(np.mean((out[0] / FULL_SCALE) ** 2)) > 0.3


def test_limiter_releases_after_a_loud_burst() -> None:
    mixer = Mixer(channels=1)
    push_tone(mixer, "a", 440, 1.0, 0.0, 0.2)
    push_tone(mixer, "b", 440, 1.0, 0.0, 0.2)
    push_tone(mixer, "a", 440, 0.25, 0.2, 1.0)
    out = mix_all(mixer, 1.2)
    assert np.abs(out).max() <= round(CEILING * FULL_SCALE)
    # One second later, the quiet tone comes out at its own level again.
    expected = np.round(tone(440, 0.25, 1.0, 0.2) * FULL_SCALE)
    assert np.abs(out[0, 48000:] - expected).max() <= 1


def test_a_sudden_peak_gets_a_ramp_not_a_jump() -> None:
    mixer = Mixer(channels=1)
    push_tone(mixer, "a", 200, 0.5, 0.0, 0.2)
    push_tone(mixer, "b", 200, 0.8, 0.1, 0.1)  # from 0.1 s the sum is 1.3× full scale
    out = mix_all(mixer, 0.2)[0] / FULL_SCALE
    reference = tone(200, 0.5, 0.0, 0.2) + np.where(np.arange(9600) >= 4800, tone(200, 0.8, 0.0, 0.2), 0)
    gain = np.divide(out, reference, out=np.ones_like(out), where=np.abs(reference) > 0.05)
    assert np.abs(out).max() <= CEILING + 1e-4
    assert gain[4800 - 240 : 4800].min() < 0.95  # the gain starts coming down before the peak arrives
    assert gain[: 4800 - 300].min() > 0.999  # and not earlier than the lookahead


@pytest.mark.parametrize(("rate", "channels"), [(16_000, 1), (44_100, 2), (48_000, 2)])
def test_other_rates_and_layouts_are_resampled_and_stay_on_time(rate: int, channels: int) -> None:
    track = SyntheticAudioTrack(SyntheticClock(), sample_rate=rate, channels=channels)
    mixer = Mixer(channels=2)
    blocks = []
    for index in range(0, 130):  # 2.6 s of 20 ms frames, mixed as they come, 40 ms behind (a jitter delay)
        frame = track.frame_at(index)
        mixer.push("bot", frame, float(frame.pts * frame.time_base))
        if index >= 2:
            blocks.append(mixer.mix((index - 2) * 0.02, 960))
    out = np.concatenate(blocks, axis=1)
    assert mixer.late_samples == 0
    detector = BeepDetector(RATE)
    detector.push(out.mean(axis=0) / FULL_SCALE, 0.0)
    assert detector.onsets_s == pytest.approx([1.0, 2.0], abs=0.001)
    beep = out[0, 48000:52800] / FULL_SCALE
    assert np.abs(beep).max() == pytest.approx(0.5, abs=0.02)


def test_timestamp_jitter_does_not_open_gaps() -> None:
    mixer = Mixer(channels=1)
    rng = np.random.default_rng(7)
    for k in range(50):
        exact_s = k * 0.02
        jitter_s = rng.uniform(-0.002, 0.002) if k else 0.0
        mixer.push("a", s16_frame(tone(300, 0.5, exact_s, 0.02)), exact_s + jitter_s)
    out = mix_all(mixer, 1.0)[0]
    expected = np.round(tone(300, 0.5, 0.0, 1.0) * FULL_SCALE)
    assert np.abs(out - expected).max() <= 1


def test_a_jump_reanchors_the_participant_and_leaves_silence() -> None:
    mixer = Mixer(channels=1)
    push_tone(mixer, "a", 300, 0.5, 0.0, 0.2)
    push_tone(mixer, "a", 300, 0.5, 0.5, 0.2)  # 300 ms of nothing in between
    out = mix_all(mixer, 0.8)[0]
    assert np.count_nonzero(out[:9600]) > 9000
    assert not out[9600:24000].any()
    assert np.count_nonzero(out[24000:33600]) > 9000


def test_late_audio_is_dropped_and_counted() -> None:
    mixer = Mixer(channels=1)
    quiet = mixer.mix(0.0, 4800)
    mixer.push("a", s16_frame(tone(300, 0.5, 0.08, 0.04)), 0.08)  # 0.08–0.12 s: half of it already mixed
    assert not quiet.any()
    assert mixer.late_samples == 960
    out = mixer.mix(0.1, 4800)[0]
    assert np.count_nonzero(out[:960]) > 900 and not out[960:].any()


def test_overlapping_frames_newest_wins() -> None:
    mixer = Mixer(channels=1)
    mixer.push("a", s16_frame(np.full(960, 0.1)), 0.0)
    mixer.push("a", s16_frame(np.full(960, 0.2)), 0.1)  # a jump: re-anchored at 0.1 s
    mixer.push("a", s16_frame(np.full(960, 0.3)), 0.1)  # the same time again: replaces it
    out = mixer.mix(0.0, 9600)[0]
    assert set(np.unique(out[4800:5760])) == {round(0.3 * FULL_SCALE)}


def test_audio_too_far_ahead_is_dropped() -> None:
    mixer = Mixer(channels=1, window_s=1.0)
    mixer.push("a", s16_frame(np.full(960, 0.1)), 5.0)
    assert mixer.early_samples == 960
    assert not mixer.mix(5.0, 960).any()


def test_a_participant_who_left_is_heard_to_the_end_then_forgotten() -> None:
    mixer = Mixer(channels=1)
    push_tone(mixer, "a", 300, 0.5, 0.0, 0.1)
    mixer.remove("a")
    out = mix_all(mixer, 0.2)[0]
    assert np.count_nonzero(out[:4800]) > 4500
    push_tone(mixer, "a", 300, 0.5, 0.2, 0.02)  # gone: a new stream, placed at its own time
    assert np.count_nonzero(mixer.mix(0.2, 960)) > 900


def test_mixing_skips_ahead_and_repeats_silence() -> None:
    mixer = Mixer(channels=1)
    push_tone(mixer, "a", 300, 0.5, 0.0, 0.4)
    skipped = mixer.mix(0.2, 960)[0]  # 0–0.2 s is skipped
    expected = np.round(tone(300, 0.5, 0.2, 0.02) * FULL_SCALE)
    assert np.abs(skipped - expected).max() <= 1
    again = mixer.mix(0.2, 1920)[0]  # the first half was mixed already: silence; then the next 20 ms
    assert not again[:960].any() and np.count_nonzero(again[960:]) > 900


def test_mono_mix_of_a_stereo_participant() -> None:
    mixer = Mixer(channels=1)
    mixer.push("a", s16_frame(tone(300, 0.4, 0, 0.02), channels=2), 0.0)
    out = mixer.mix(0.0, 960)
    assert out.shape == (1, 960)
    assert np.abs(out[0] - np.round(tone(300, 0.4, 0, 0.02) * FULL_SCALE)).max() <= 1


def test_the_beeping_participant_is_the_speaker_while_they_beep() -> None:
    clock = SyntheticClock()
    ada, grace = SyntheticAudioTrack(clock), SyntheticAudioTrack(clock, beep_frequency_hz=1200)
    mixer = Mixer(channels=2)
    speakers: list[str | None] = []
    for index in range(200):  # 4 s of 20 ms frames; Grace's beeps come half a second after Ada's
        mixer.push("ada", ada.frame_at(index), index * 0.02)
        mixer.push("grace", grace.frame_at(index), index * 0.02 + 0.5)
        if index >= 2:
            mixer.mix((index - 2) * 0.02, 960)
            speakers.append(mixer.speakers.speaker)  # after the block ending at (index - 1) · 20 ms

    def speaker_after(time_s: float) -> str | None:
        return speakers[round(time_s / 0.02) - 1]

    for second in (1, 2, 3):
        assert speaker_after(second + 0.08) == "ada"
        assert speaker_after(second + 0.58) == "grace"
        assert speaker_after(second + 0.45) is None and speaker_after(second + 0.95) is None
    assert mixer.speakers.levels_db()["ada"] < -60  # between beeps: the bot's quiet noise


@pytest.mark.parametrize("layout", ["mono", "stereo"])
@pytest.mark.parametrize("sample_format", ["s16", "s16p", "flt", "fltp"])
def test_audio_at_the_mix_rate_is_taken_as_swresample_would_convert_it(sample_format: str, layout: str) -> None:
    channels = 1 if layout == "mono" else 2
    left, right = tone(440, 0.5, 0, 0.02), tone(660, 0.25, 0, 0.02)
    planes = np.stack([left, right][:channels])
    if sample_format.startswith("s16"):
        planes = np.round(planes * FULL_SCALE).astype(np.int16)
    else:
        planes = planes.astype(np.float32)
    data = planes if sample_format.endswith("p") else planes.T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=sample_format, layout=layout)
    frame.sample_rate = RATE
    expected = av.AudioResampler(format="fltp", layout=layout, rate=RATE).resample(frame)[0].to_ndarray()
    mixer = Mixer(channels)
    mixer.push("ada", frame, 0.0)
    mixer.push("ada", s16_frame(np.zeros(960), channels=channels), 0.02)  # the limiter's lookahead: silence
    mixed = mixer.mix(0.0, 960)
    # The mix is int16 again: the same samples as swresample's floats, rounded.
    assert np.array_equal(mixed, np.rint(expected * FULL_SCALE).astype(np.int16))
