"""A running recorder as its owner sees it (recording/ownership.py): what it can be asked, what it answers.

Pause, resume and stop carry the wall-clock instant they were asked at (the row's `wanted_at`), so the file
cuts where the API call happened, not where the owner heard of it: a recorder renders a jitter delay behind
the present, so an instant a few milliseconds old is still ahead of what it has written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Finished:
    """A finalised capture: the main file's size (None when nothing was written) and when capture ended.

    `captured_media` is False when the capture wrote no media at all: a track recording then ends ERRORED
    instead of UPLOADING (recordings.md §7.2, §7.4), and a recorder that failed ends its recording ERRORED
    without a file. A composite recording always has media once RECORDING.
    """

    file_size: int | None
    ended_at: datetime
    captured_media: bool = True


class Capture(Protocol):
    """One recorder, run by the process that owns its recording."""

    async def run(self) -> None:
        """Capture until stopped, by `finish()` or by itself."""

    def pause(self, at_wall_s: float) -> None:
        """Feed the encoder nothing captured from `at_wall_s` on; the file's timeline closes up."""

    def resume(self, at_wall_s: float) -> None:
        """Feed the encoder again from `at_wall_s`, continuing the same file."""

    async def finish(self, at_wall_s: float | None = None) -> Finished:
        """Stop capturing (now, or at `at_wall_s` if earlier) and finalise the files. Never touches the database.
        Safe to call twice (the same answer)."""
        ...
