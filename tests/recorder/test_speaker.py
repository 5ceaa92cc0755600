"""Who is speaking: the loudest participant above a threshold, held so the composite's outline does not flicker."""

from __future__ import annotations

import numpy as np
import pytest

from recordkit.recorder.speaker import HOLD_S, ONSET_S, SILENCE_DBFS, SpeakerMeter, level_dbfs

RATE = 48_000
BLOCK_S = 0.02
LOUD = 0.1  # mean square: −10 dBFS, a loud voice
QUIET = 1e-7  # −70 dBFS: a microphone in a quiet room
# Levels per block, as a script: (seconds, {participant: mean square}) runs one after another.
Script = list[tuple[float, dict[str, float]]]


def block(mean_square: float) -> np.ndarray:
    """A stereo block of samples with this mean square."""
    return np.full((2, round(BLOCK_S * RATE)), np.sqrt(mean_square), np.float32)


def speakers_over(script: Script) -> list[tuple[float, str | None]]:
    """The speaker after each block (with the block's end time) when the script is played block by block."""
    meter, now_s, seen = SpeakerMeter(RATE), 0.0, []
    for duration_s, levels in script:
        for _ in range(round(duration_s / BLOCK_S)):
            meter.update({who: block(mean_square) for who, mean_square in levels.items()}, now_s)
            now_s = round(now_s + BLOCK_S, 9)
            seen.append((now_s, meter.speaker))
    return seen


def speaker_at(script: Script, at_s: float) -> str | None:
    return next(speaker for end_s, speaker in speakers_over(script) if end_s >= at_s - 1e-9)


@pytest.mark.parametrize(
    ("script", "at_s", "expected"),
    [
        ([(1.0, {"a": QUIET, "b": QUIET})], 1.0, None),  # nobody above the threshold
        ([(0.5, {"a": QUIET}), (0.1, {"a": LOUD})], 0.6, "a"),  # a 100 ms beep makes a speaker ...
        ([(0.5, {"a": QUIET}), (0.1, {"a": LOUD})], 0.5 + ONSET_S - BLOCK_S, None),  # ... once it lasted ONSET_S
        ([(0.5, {"a": QUIET}), (0.02, {"a": LOUD}), (0.5, {"a": QUIET})], 0.54, None),  # a 20 ms blip does not
        ([(0.2, {"a": LOUD}), (1.0, {"a": QUIET})], 0.2 + HOLD_S - BLOCK_S, "a"),  # held through a pause ...
        ([(0.2, {"a": LOUD}), (1.0, {"a": QUIET})], 0.2 + HOLD_S + BLOCK_S, None),  # ... and no longer
        ([(0.2, {"a": LOUD}), (0.2, {"a": QUIET}), (0.2, {"a": LOUD}), (0.25, {"a": QUIET})], 0.8, "a"),  # words
        # Two talking at once: the first keeps the outline unless the other is clearly louder.
        ([(0.5, {"a": LOUD / 2, "b": QUIET}), (1.0, {"a": LOUD / 2, "b": LOUD})], 1.5, "a"),
        ([(0.5, {"a": LOUD / 10, "b": QUIET}), (1.0, {"a": LOUD / 10, "b": LOUD})], 1.5, "b"),
        # When the speaker falls quiet, the other one talking takes over after the hold.
        ([(0.5, {"a": LOUD, "b": LOUD / 4}), (1.0, {"a": QUIET, "b": LOUD / 4})], 0.5 + HOLD_S + 0.1, "b"),
        ([(0.5, {"a": LOUD}), (0.1, {"b": QUIET})], 0.6, None),  # gone: no longer the speaker
    ],
)
def test_speaker(script: Script, at_s: float, expected: str | None) -> None:
    assert speaker_at(script, at_s) == expected


def test_a_bot_beeping_once_a_second_is_outlined_during_each_beep_and_not_in_between() -> None:
    beep_second: Script = [(0.1, {"bot": 0.125, "page": QUIET}), (0.9, {"bot": QUIET, "page": QUIET})]
    seen = dict(speakers_over(beep_second * 4))
    for second in range(4):
        assert seen[round(second + 0.06, 2)] == "bot"
        assert seen[round(second + 0.5, 2)] is None
        assert all(seen[round(second + t, 2)] is None for t in (0.5, 0.6, 0.7, 0.8, 0.9))


def test_a_blip_across_two_blocks_counts_for_its_own_length() -> None:
    meter, blip = SpeakerMeter(RATE), np.zeros((1, 1600), np.float32)  # 33 ms blocks, as at 30 fps
    loud_end, loud_start = blip.copy(), blip.copy()
    loud_end[:, -720:] = 0.5  # 15 ms at the end of one block and 15 ms at the start of the next: 30 ms
    loud_start[:, :720] = 0.5
    for index, samples in enumerate([blip, loud_end, loud_start, blip, blip]):
        meter.update({"page": samples}, index * 1600 / RATE)
        assert meter.speaker is None


def test_levels_are_in_dbfs() -> None:
    meter = SpeakerMeter(RATE)
    meter.update({"a": block(0.5), "b": block(0.0), "c": block(1e-20)}, 0.0)
    assert meter.levels_db() == pytest.approx({"a": -3.0103, "b": SILENCE_DBFS, "c": SILENCE_DBFS})
    assert level_dbfs(1.0) == 0.0
