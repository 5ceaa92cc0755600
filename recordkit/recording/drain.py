"""A graceful shutdown (SIGTERM/SIGINT): every recording this process captures ends cleanly and is uploaded.

Record jobs stop being taken; each recorder we own finishes its file at the instant of the signal and its
recording moves to UPLOADING (a recording not yet started is handed back to the queue); the upload jobs
those stops queued run here while the time allows; then the job engine stops, cutting short only what is
still running at the deadline, which the next start (or another process) takes up again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import func, select

from recordkit.db.engine import Database
from recordkit.db.models import Recording
from recordkit.jobs.dispatcher import JobEngine
from recordkit.recording.lifecycle import Status
from recordkit.recording.ownership import Recorders

log = logging.getLogger(__name__)

POLL_S = 0.1


async def drain(db: Database, engine: JobEngine, recorders: Recorders, at: datetime, timeout_s: float) -> None:
    """Finish what this process holds within `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    recorders.draining = True
    record_jobs_ended = asyncio.create_task(engine.drain_queues(["record", "record_tracks"], timeout_s))
    stopped = await recorders.drain(at, timeout_s)
    await record_jobs_ended
    log.info("drain: %d recording(s) stopped; uploading them", len(stopped))
    # The rows tell when the uploads are done, wherever they ran: poll them.
    while stopped and loop.time() < deadline and await _still_uploading(db, stopped):  # noqa: ASYNC110
        await asyncio.sleep(POLL_S)
    await engine.stop(max(0.0, deadline - loop.time()))


async def _still_uploading(db: Database, recording_ids: list[str]) -> bool:
    async with db.read() as session:
        count = await session.scalar(
            select(func.count()).where(Recording.id.in_(recording_ids), Recording.status == Status.UPLOADING.value)
        )
    return bool(count)
