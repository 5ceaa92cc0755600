"""Finished jobs are kept a while for operators to look at (attempts, last error), then forgotten."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from recordkit.jobs.dispatcher import JobEngine

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0


async def prune_forever(engine: JobEngine, older_than: timedelta, interval_s: float = PRUNE_EVERY_S) -> None:
    """Every `interval_s`, forget jobs that ended more than `older_than` ago; a failure is tried again later."""
    while True:
        try:
            await engine.prune(older_than)
        except Exception:
            log.exception("pruning finished jobs failed")
        await asyncio.sleep(interval_s)
