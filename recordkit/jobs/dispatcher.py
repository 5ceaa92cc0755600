"""The dispatcher seam (design.md): `submit(job)`; which runner is behind it is app.py's business."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A unit of background work: `record`, `upload` or `deliver_webhook`, about one recording."""

    kind: str
    recording_id: str


Handler = Callable[[Job], Awaitable[None]]


class Dispatcher(Protocol):
    async def submit(self, job: Job) -> None: ...


class LocalDispatcher:
    """Runs jobs as tasks on this process's event loop.

    A job whose kind has no registered handler is logged and left alone: until a recorder is
    registered, a started recording honestly stays INVOKED.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    async def submit(self, job: Job) -> None:
        handler = self._handlers.get(job.kind)
        if handler is None:
            log.info("no worker for %s jobs; recording %s waits", job.kind, job.recording_id)
            return
        task = asyncio.create_task(self._run(handler, job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, handler: Handler, job: Job) -> None:
        try:
            await handler(job)
        except Exception:
            log.exception("%s job for recording %s failed", job.kind, job.recording_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
