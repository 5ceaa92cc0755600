"""Who is speaking: each participant's audio level, measured by the mixer block by block, and the choice of the
active speaker from those levels, held steady enough that the composite's outline does not flicker.

A participant is *talking* once their level has stayed at or above `THRESHOLD_DBFS` for `ONSET_S` (a click,
a cough or a short blip makes nobody the speaker), and stays talking until they have been below it for
`HOLD_S` (the pauses between words and phrases). The speaker is the loudest talking participant; while they
talk, someone else takes over only by being `TAKEOVER_DB` louder. Loudness for that comparison is the level
averaged over `LOUDNESS_S`, so it follows a voice rather than its syllables.

Times are seconds on the mixer's timeline, so the choice follows what is heard in the recording.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

# RMS in dB relative to full scale: speech sits around −35 to −15 dBFS, a quiet room's microphone and
# codec noise below −55.
THRESHOLD_DBFS = -45.0
# Levels are measured over windows this long, finer than the mixer's blocks, so a blip straddling two blocks
# still counts for its own length.
WINDOW_S = 0.01
ONSET_S = 0.05
HOLD_S = 0.3
TAKEOVER_DB = 6.0
LOUDNESS_S = 0.3
SILENCE_DBFS = -120.0  # the level of a block of zeros, so levels stay finite
THRESHOLD_MEAN_SQUARE = 10 ** (THRESHOLD_DBFS / 10)


def level_dbfs(mean_square: float) -> float:
    """A level from the mean of squared samples (full scale = 1)."""
    return max(SILENCE_DBFS, 10 * math.log10(mean_square)) if mean_square > 0 else SILENCE_DBFS


@dataclass
class _Voice:
    last_mean_square: float = 0.0  # the last window's
    loudness: float = 0.0  # mean square, averaged over LOUDNESS_S
    loud_since_s: float | None = None  # start of the current stretch at or above the threshold
    last_loud_s: float = -math.inf  # end of the last window at or above the threshold
    talking: bool = False


class SpeakerMeter:
    """Levels per participant and the active speaker, updated once per mixed block."""

    def __init__(self, sample_rate: int) -> None:
        self.speaker: str | None = None
        self._window = round(WINDOW_S * sample_rate)
        self._sample_rate = sample_rate
        self._voices: dict[str, _Voice] = {}

    def levels_db(self) -> dict[str, float]:
        """Each participant's level in the last window measured, in dBFS."""
        return {participant_id: level_dbfs(voice.last_mean_square) for participant_id, voice in self._voices.items()}

    def update(self, blocks: dict[str, np.ndarray], start_s: float) -> None:
        """Take each participant's samples (channels × n, full scale 1) of the block starting at `start_s`.
        Participants left out are gone: their level, and their turn as speaker, end."""
        self._voices = {pid: self._voices.get(pid) or _Voice() for pid in blocks}
        for participant_id, samples in blocks.items():
            self._measure(self._voices[participant_id], samples, start_s)
        talking = {pid: voice for pid, voice in self._voices.items() if voice.talking}
        loudest = max(talking, key=lambda pid: talking[pid].loudness, default=None)
        current = talking.get(self.speaker) if self.speaker is not None else None
        if current is None or (
            loudest is not None and level_dbfs(talking[loudest].loudness) >= level_dbfs(current.loudness) + TAKEOVER_DB
        ):
            self.speaker = loudest

    def _measure(self, voice: _Voice, samples: np.ndarray, start_s: float) -> None:
        # Squares summed over the channels, then over each window, as the mean per sample of the window.
        squares = np.einsum("ij,ij->j", samples, samples)
        starts, counts, bounds = _windows(self._window, samples.shape[0], squares.size)
        mean_squares = np.add.reduceat(squares, starts, dtype=np.float64) / counts
        # The windows of a block in plain floats: a numpy call per window would cost more than the measuring.
        for mean_square, (first, end) in zip(mean_squares.tolist(), bounds, strict=True):
            begin_s, end_s = start_s + first / self._sample_rate, start_s + end / self._sample_rate
            voice.last_mean_square = mean_square
            voice.loudness += (mean_square - voice.loudness) * (1 - math.exp((begin_s - end_s) / LOUDNESS_S))
            if mean_square >= THRESHOLD_MEAN_SQUARE:
                voice.loud_since_s = begin_s if voice.loud_since_s is None else voice.loud_since_s
                voice.last_loud_s = end_s
                # (a hair's tolerance: window ends are sums of floats)
                voice.talking = voice.talking or end_s - voice.loud_since_s >= ONSET_S - 1e-9
            else:
                voice.loud_since_s = None
                voice.talking = voice.talking and end_s - voice.last_loud_s < HOLD_S


@functools.lru_cache(maxsize=32)
def _windows(window: int, channels: int, size: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """The windows of a block of `size` samples: their starts, their sample counts (times `channels`) and
    (start, end) pairs. Blocks come in a few sizes, so each size's are worked out once."""
    starts = np.arange(0, size, window)
    ends = np.append(starts[1:], size)
    return starts, (ends - starts) * channels, list(zip(starts.tolist(), ends.tolist(), strict=True))
