"""The asyncio tasks of one running recorder: capture work that `finish()` cancels, and hooks that tell the
rest of recordkit something and are never cancelled. A failure of vital capture work ends the recording."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class RecorderTasks:
    """Starts, supervises and stops a recorder's tasks; `on_vital_failure` is called once per failure."""

    def __init__(self, name: str, on_vital_failure: Callable[[], None]) -> None:
        self._name = name
        self._on_vital_failure = on_vital_failure
        self._work: set[asyncio.Task[Any]] = set()
        self._hooks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any], *, vital: bool = False) -> asyncio.Task[Any]:
        """Run capture work; when vital work fails, `on_vital_failure` ends the recording with what it has."""
        return self._track(work, self._work, vital)

    def hook(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Tell the rest of recordkit something; never cancelled by `cancel_work()`."""
        return self._track(work, self._hooks, vital=False)

    async def cancel_work(self) -> None:
        """Cancel all capture work and wait until it has stopped."""
        for task in self._work:
            task.cancel()
        await asyncio.gather(*self._work, return_exceptions=True)

    async def wait_for_hooks(self) -> None:
        """Wait until every hook, including hooks started meanwhile, has finished."""
        while self._hooks:
            await asyncio.gather(*list(self._hooks), return_exceptions=True)

    def _track(self, work: Coroutine[Any, Any, Any], into: set[asyncio.Task[Any]], vital: bool) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        into.add(task)
        task.add_done_callback(into.discard)
        task.add_done_callback(lambda done: self._failed(done, vital))
        return task

    def _failed(self, task: asyncio.Task[Any], vital: bool) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.error("%s task failed", self._name, exc_info=task.exception())
        if vital:
            self._on_vital_failure()
