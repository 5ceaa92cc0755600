"""The dispatcher seam (design.md): `submit(session, job)` writes a job in the transaction of the change that
causes it, so the change and its job commit together or not at all; which engine runs it is app.py's business."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class Job:
    """A unit of background work about one recording: `record`, `record_tracks` or `upload`.

    `queue` routes it (None: the kind's own queue).
    """

    kind: str
    recording_id: str
    queue: str | None = None


class Dispatcher(Protocol):
    async def submit(self, session: AsyncSession, job: Job) -> None:
        """Write `job` into the open transaction of `session`; it runs once that transaction commits."""

    async def pending(
        self, session: AsyncSession, kinds: Iterable[str], *, running: bool = True
    ) -> set[tuple[str, str]]:
        """(kind, recording id) of every job of these kinds waiting or (with `running`) running."""
        ...


class JobEngine(Dispatcher, Protocol):
    """A dispatcher that also runs the jobs: the embedded runner or procrastinate."""

    async def start(self, context: Any) -> None:
        """Run jobs, each handler given `context`, until `stop()`."""

    async def drain_queues(self, queues: Iterable[str], timeout_s: float) -> bool:
        """Claim no more jobs from these queues and wait until their running jobs ended; whether in time."""
        ...

    async def stop(self, timeout_s: float) -> None:
        """Claim nothing more; running jobs may end within `timeout_s`, the rest are cut short and run again
        (their cut attempt counted) wherever jobs are next taken."""

    async def prune(self, older_than: timedelta) -> None:
        """Forget jobs that ended more than `older_than` ago."""
