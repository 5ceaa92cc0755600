"""After a restart (recordings.md §7.4): no recording stays stuck and no file is lost.

- RECORDING/PAUSED: the recorder died with the process. Its spool file is playable up to the crash
  (fragmented MP4 / WebM clusters); its packets are copied into a complete file, capture ends there —
  `stopped_time` is the spool's last write — with `INTERNAL_ERROR`, and the file is uploaded. A track
  recording's files likewise (ERRORED if it had none); its manifest is rebuilt from the file names at upload.
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
from recordkit.recording.manifest import TRACK_FILE
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
            if recording.type == Kind.TRACK.value:
                # One file per track, and no manifest yet: the upload rebuilds it from the file names.
                tracks = [path for path in spool.glob("*") if TRACK_FILE.match(path.name)]
                sizes = [await asyncio.to_thread(remux_in_place, path) for path in tracks]
                file_size, captured_media = (sum(sizes) if sizes else None), bool(sizes)
            else:
                # Copy the packets into a complete file: a WebM cut off by the crash has no duration.
                remuxed = {path.name: await asyncio.to_thread(remux_in_place, path) for path in spool.glob("*.*")}
                file_size, captured_media = remuxed.get(recording.output_file_name), True
            await recordings.end_capture(
                recording.id,
                INTERNAL_ERROR,
                file_size=file_size,
                stopped_at=stopped_at,
                captured_media=captured_media,
            )
        elif status is Status.UPLOADING:
            await dispatcher.submit(Job("upload", recording.id))
        elif now - recording.invoked_time > timedelta(seconds=invoked_timeout_s):
            await recordings.capture_failed(recording.id)
        else:
            kind = "record" if recording.type == Kind.COMPOSITE.value else "record_tracks"
            await dispatcher.submit(Job(kind, recording.id))


async def fail_stale_invoked(recordings: Recordings, invoked_timeout_s: float, interval_s: float = 30.0) -> None:
    """Every `interval_s`, end ERRORED the recordings no recorder took within the limit (§7.4)."""
    while True:
        cutoff = utcnow() - timedelta(seconds=invoked_timeout_s)
        for recording_id in await recordings.invoked_before(cutoff):
            log.error("recording %s was not started within %.0f s", recording_id, invoked_timeout_s)
            await recordings.capture_failed(recording_id)
        await asyncio.sleep(interval_s)
