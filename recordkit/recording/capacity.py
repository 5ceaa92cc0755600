"""How much capturing this process takes on at once (`RECORDKIT_MAX_RECORDINGS`), weighed by kind.

`RECORDKIT_MAX_RECORDINGS` counts composite recordings. A track recording stores its tracks as they came,
without decoding or encoding: 0.001 core per audio and 0.004 per video track (bench/track_cost.py), so about
0.02 core for four participants' audio and video, against 0.45-0.65 core for a two-person composite
(bench/recording_cost.py). It weighs a quarter of a composite all the same (`TRACK_UNITS` of
`COMPOSITE_UNITS`): its cost grows with the participants, and each track is a file open and written on the
spool's disk.

A record job holds its recording's weight from before it claims the row until its recorder ends; a job that
finds too little left waits, first come first served, and its recording waits `INVOKED` meanwhile
(recordings.md §7.4), until the INVOKED timeout ends it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

COMPOSITE_UNITS = 4
TRACK_UNITS = 1


class CaptureSlots:
    """A weighted, first-come-first-served budget of `max_recordings` composites' worth of capture."""

    def __init__(self, max_recordings: int) -> None:
        self.capacity = max_recordings * COMPOSITE_UNITS
        self.used = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def held(self, units: int) -> AsyncIterator[None]:
        """Hold `units` of the budget for the block, waiting for them first if they are not free."""
        await self._acquire(units)
        try:
            yield
        finally:
            self._release(units)

    async def _acquire(self, units: int) -> None:
        if not self._waiting and self.used + units <= self.capacity:
            self.used += units
            return
        granted = asyncio.get_running_loop().create_future()
        self._waiting.append((units, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release(units)  # granted just as it was cancelled: give it back
            else:
                self._waiting.remove((units, granted))
                self._grant()  # a smaller job behind it may fit now
            raise

    def _release(self, units: int) -> None:
        self.used -= units
        self._grant()

    def _grant(self) -> None:
        # In order: a composite at the head is never passed by track recordings that keep arriving.
        while self._waiting and self.used + self._waiting[0][0] <= self.capacity:
            units, granted = self._waiting.popleft()
            self.used += units
            granted.set_result(None)
