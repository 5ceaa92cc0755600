"""The recorders running in this process, as the recording service sees them.

The service applies API actions to the database; a running recorder must follow them: pause stops
feeding its encoder, resume feeds it again, and stop finalises the file before the answer (so the
answer already carries `file_size`). `finish()` must never wait on the database: the service calls it
while holding the recording's row lock.
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
    """One running recorder."""

    def pause(self) -> None:
        """Stop feeding the encoder from now on; the file's timeline closes up."""

    def resume(self) -> None:
        """Feed the encoder again, continuing the same file."""

    async def finish(self) -> Finished:
        """Stop capturing and finalise the files. Safe to call twice (the same answer)."""
        ...


class RunnableCapture(Capture, Protocol):
    """A recorder as its job runs it: until it stops, by `finish()` or by itself."""

    async def run(self) -> None:
        """Capture until stopped."""


class Captures:
    """Running recorders by recording id."""

    def __init__(self) -> None:
        self._running: dict[str, Capture] = {}

    def add(self, recording_id: str, capture: Capture) -> None:
        self._running[recording_id] = capture

    def discard(self, recording_id: str) -> None:
        self._running.pop(recording_id, None)

    def get(self, recording_id: str) -> Capture | None:
        return self._running.get(recording_id)

    def __len__(self) -> int:
        return len(self._running)
