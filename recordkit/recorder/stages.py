"""Where a composite recorder's worker thread spends its CPU, by stage, from the thread's own CPU clock.

The worker thread does all of a recording's media work (decode, compose, encode, mix), so its CPU time by stage
is the recording's cost, apart from reading packets on the event loop. `recordkit_recorder_cpu_seconds_total`
exports it, and `bench/recording_cost.py --breakdown` reads it there.
"""

from __future__ import annotations

import time

# Muxing into the outputs happens inside each encode call: it counts with its encoder.
STAGES = ("video_decode", "compose", "video_encode", "audio_decode", "mix", "audio_encode")


class StageClock:
    """Laps of one thread's CPU time: after `start()`, each `lap(stage)` adds the CPU used since the previous call
    to that stage. Call it from one thread; another may read `totals()` at any time."""

    def __init__(self) -> None:
        self._totals = dict.fromkeys(STAGES, 0.0)
        self._last_s = 0.0

    def start(self) -> None:
        self._last_s = time.thread_time()

    def lap(self, stage: str) -> None:
        now_s = time.thread_time()
        self._totals[stage] += now_s - self._last_s
        self._last_s = now_s

    def totals(self) -> dict[str, float]:
        """CPU seconds per stage so far (running totals)."""
        return dict(self._totals)
