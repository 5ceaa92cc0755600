"""After a restart (recordings.md §7.4): no recording stays stuck and no file is lost.

- RECORDING/PAUSED: the recorder died with the process. Its spool file is playable up to the crash
  (fragmented MP4 / WebM clusters); its packets are copied into a complete file, capture ends there —
  `stopped_time` is the spool's last write — with `INTERNAL_ERROR`, and the file is uploaded.
- UPLOADING: the upload is started again (it is idempotent).
- INVOKED: dispatched again, unless it has waited longer than the operator's limit (then ERRORED).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recordkit.clock import utcnow
from recordkit.db.models import Recording
from recordkit.jobs.dispatcher import Dispatcher, Job
from recordkit.recording.lifecycle import Kind, Status
from recordkit.recording.remux import remux_in_place
from recordkit.recording.service import INTERNAL_ERROR, Recordings
from recordkit.recording.spool import spool_dir

log = logging.getLogger(__name__)


def crash_time(recording: Recording, spool: Path, now: datetime) -> datetime:
    """When capture really ended: the spool's last write, never before capture began nor after now."""
    written = [path.stat().st_mtime for path in spool.glob("*") if path.is_file()] if spool.exists() else []
    if not written:
        return max(recording.started_time or now, min(now, recording.updated_at))
    last = datetime.fromtimestamp(max(written), UTC).replace(tzinfo=None)
    return max(recording.started_time or last, min(now, last))


async def recover(recordings: Recordings, dispatcher: Dispatcher, data_dir: Path, invoked_timeout_s: float) -> None:
    """Bring every unfinished recording back on its way; run once at start, before new work arrives."""
    now = utcnow()
    for recording in await recordings.unfinished():
        status = Status(recording.status)
        if status in (Status.RECORDING, Status.PAUSED):
            spool = spool_dir(data_dir, recording.id)
            log.warning("recording %s was %s when recordkit stopped; finishing its file", recording.id, status)
            stopped_at = crash_time(recording, spool, now)
            # Copy the packets into a complete file: a WebM cut off by the crash has no duration.
            remuxed = {path.name: await asyncio.to_thread(remux_in_place, path) for path in spool.glob("*.*")}
            await recordings.end_capture(
                recording.id, INTERNAL_ERROR, file_size=remuxed.get(recording.output_file_name), stopped_at=stopped_at
            )
        elif status is Status.UPLOADING:
            await dispatcher.submit(Job("upload", recording.id))
        elif now - recording.invoked_time > timedelta(seconds=invoked_timeout_s):
            await recordings.capture_failed(recording.id)
        else:
            kind = "record" if recording.type == Kind.COMPOSITE.value else "record_tracks"
            await dispatcher.submit(Job(kind, recording.id))
