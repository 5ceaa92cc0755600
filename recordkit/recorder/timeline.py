"""A recording's timeline: wall-clock instants → media time, with paused spans cut out (recordings.md §7.5).

Media time 0 is the instant capture started. A pause at wall time P and a resume at R remove [P, R) from
the media timeline, so what was captured after R follows what was captured before P with no gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Timeline:
    start_wall_s: float
    _pauses: list[tuple[float, float | None]] = field(default_factory=list)

    @property
    def paused(self) -> bool:
        return bool(self._pauses) and self._pauses[-1][1] is None

    def pause(self, at_wall_s: float) -> None:
        """Cut media time from `at_wall_s` on, until `resume`. Pausing while paused changes nothing."""
        if not self.paused:
            self._pauses.append((max(at_wall_s, self.start_wall_s), None))

    def resume(self, at_wall_s: float) -> None:
        """Count media time again from `at_wall_s`. Resuming while running changes nothing."""
        if self.paused:
            began, _ = self._pauses[-1]
            self._pauses[-1] = (began, max(began, at_wall_s))

    def in_pause(self, wall_s: float) -> bool:
        """Whether a wall-clock instant falls in a paused span (the one going on included)."""
        return any(began <= wall_s and (ended is None or wall_s < ended) for began, ended in self._pauses)

    def media_time(self, wall_s: float) -> float | None:
        """The media time of a wall-clock instant, or None when it falls before the start or in a pause."""
        if wall_s < self.start_wall_s:
            return None
        cut = 0.0
        for began, ended in self._pauses:
            if wall_s < began:
                break
            if ended is None or wall_s < ended:
                return None
            cut += ended - began
        return wall_s - self.start_wall_s - cut
