"""The reconciler: no recording stays in a non-terminal state with no job and no owner (recordings.md §7.4).

It runs a pass at start and every few seconds, over every unfinished recording:
- INVOKED longer than the operator's limit → ERRORED (INTERNAL_ERROR); INVOKED with no record job and no
  owner (a job lost with a crashed process) → a record job again.
- RECORDING/PAUSED whose owner's lease ran out, or whose process is gone → recovered: the spool is
  playable up to the crash (fragmented MP4 / WebM clusters), its packets are copied into a complete file,
  capture ends at the spool's last write — or at a stop the API asked for meanwhile, with its reason —
  else with INTERNAL_ERROR, and the file is uploaded. A track recording's files likewise (ERRORED if it had
  none); its manifest is rebuilt from the file names at upload.
- UPLOADING with no upload job → an upload job again.
At start, `.part` files that cut-short moves into the bucket left behind for finished recordings are deleted.
A stop or a session's end that finds no live owner is recovered at once, not at the next pass. One failing
recording never stops a pass: it is logged and the pass goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from recordkit.clock import utcnow
from recordkit.db.bus import CONTROL, Bus
from recordkit.db.engine import Database
from recordkit.db.models import Recording
from recordkit.fleet import recorders_elsewhere
from recordkit.jobs.dispatcher import Dispatcher, Job
from recordkit.recorder.manifest import TRACK_FILE
from recordkit.recorder.outputs.hls import hls_dir, package_hls
from recordkit.recorder.remux import remux_in_place
from recordkit.recorder.spool import spool_dir
from recordkit.recording.lifecycle import CAPTURING, Kind, Status
from recordkit.recording.ownership import STOPPED, Recorders, owner_is_live
from recordkit.recording.reports import CaptureReports
from recordkit.recording.rows import INTERNAL_ERROR
from recordkit.recording.takeover import continuable
from recordkit.storage.bucket import LocalBucket

log = logging.getLogger(__name__)

UNFINISHED = (Status.INVOKED.value, Status.RECORDING.value, Status.PAUSED.value, Status.UPLOADING.value)
JOB_KINDS = ("record", "record_tracks", "upload")
# A row changed this recently may have its job or owner on the way: a pass leaves it to the next one.
SETTLE_S = 5.0


def crash_time(recording: Recording, spool: Path, now: datetime) -> datetime:
    """When capture really ended: the spool's last write, never before capture began nor after now."""
    # rglob: a recording continued elsewhere wrote last in its latest segment's folder (takeover.py).
    written = [path.stat().st_mtime for path in spool.rglob("*") if path.is_file()] if spool.exists() else []
    if not written:
        return max(recording.started_time or now, min(now, recording.updated_at))
    last = datetime.fromtimestamp(max(written), UTC).replace(tzinfo=None)
    return max(recording.started_time or last, min(now, last))


def record_job(recording: Recording) -> Job:
    return Job("record" if recording.type == Kind.COMPOSITE.value else "record_tracks", recording.id)


class Reconciler:
    """Finds what no job and no owner will finish, and puts it back on its way."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        jobs: Dispatcher,
        reports: CaptureReports,
        recorders: Recorders,
        data_dir: Path,
        bucket: LocalBucket,
        invoked_timeout_s: float,
        retry_stalled_jobs: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self.db = db
        self.bucket = bucket
        self.jobs = jobs
        self.reports = reports
        self.recorders = recorders
        self.data_dir = data_dir
        self.invoked_timeout_s = invoked_timeout_s
        self.retry_stalled_jobs = retry_stalled_jobs
        self._tasks: set[asyncio.Task[Any]] = set()
        bus.subscribe(CONTROL, self._on_control)

    async def run_forever(self, interval_s: float) -> None:
        while True:
            await self.pass_once()
            await asyncio.sleep(interval_s)

    async def pass_once(self) -> None:
        """One look at every unfinished recording."""
        try:
            if self.retry_stalled_jobs is not None:
                await self.retry_stalled_jobs()
            async with self.db.read() as session:
                # The jobs before the rows: a job that ends between the two reads ended its row's step first, so
                # the row then read is past it. Read the other way round, an upload finishing in between left its
                # row UPLOADING and no job pending, and the pass queued the upload again.
                pending = await self.jobs.pending(session, JOB_KINDS)
                waiting = await self.jobs.pending(session, JOB_KINDS, running=False)
                rows = list(
                    (
                        await session.execute(
                            select(Recording).where(Recording.status.in_(UNFINISHED)).order_by(Recording.invoked_time)
                        )
                    ).scalars()
                )
        except Exception:
            log.exception("a reconciler pass could not read the recordings; the next pass tries again")
            return
        now = utcnow()
        for recording in rows:
            try:
                await self._reconcile(recording, pending, waiting, now)
            except Exception:
                log.exception("reconciling recording %s failed; going on with the others", recording.id)

    async def remove_leftover_parts(self) -> int:
        """Delete the `.part` files of finished recordings (a move into the bucket that a crash or a failed upload
        cut short; an unfinished recording's upload completes or replaces its own); how many."""
        parts = await asyncio.to_thread(self.bucket.part_files)
        if not parts:
            return 0
        async with self.db.read() as session:
            finished = set(
                (
                    await session.execute(
                        select(Recording.id).where(
                            Recording.id.in_({rid for rid, _ in parts}), Recording.status.not_in(UNFINISHED)
                        )
                    )
                ).scalars()
            )
        leftovers = [path for rid, path in parts if rid in finished]
        for path in leftovers:
            log.info("removing %s, left by an unfinished move into the bucket", path)
            path.unlink(missing_ok=True)
        return len(leftovers)

    async def _reconcile(
        self, recording: Recording, pending: set[tuple[str, str]], waiting: set[tuple[str, str]], now: datetime
    ) -> None:
        status = Status(recording.status)
        held = self.recorders.owns(recording.id) or owner_is_live(recording, self.recorders.node_id, now)
        settled = now - recording.updated_at > timedelta(seconds=SETTLE_S)
        if status is Status.INVOKED:
            if now - recording.invoked_time > timedelta(seconds=self.invoked_timeout_s):
                log.error("recording %s was not started within %.0f s", recording.id, self.invoked_timeout_s)
                await self.reports.capture_failed(recording.id)
            elif not held and settled and (record_job(recording).kind, recording.id) not in pending:
                log.warning("recording %s is INVOKED with no record job and no recorder; queueing one", recording.id)
                await self._submit(record_job(recording))
        elif status in CAPTURING:
            if held:
                return
            if await self._may_continue_elsewhere(recording):
                # Takeover: the recording stays RECORDING/PAUSED and a worker continues it in a new segment. Its
                # running record job is the dead worker's (a live one would hold the row): only a waiting one counts.
                if (record_job(recording).kind, recording.id) not in waiting:
                    log.warning("recording %s: its worker is gone; queueing its continuation", recording.id)
                    await self._submit(record_job(recording))
            else:
                await self.recover(recording.id)
        elif settled and ("upload", recording.id) not in pending:
            log.warning("recording %s is UPLOADING with no upload job; queueing one", recording.id)
            await self._submit(Job("upload", recording.id))

    async def _may_continue_elsewhere(self, recording: Recording) -> bool:
        """In a fleet, a composite nobody was asked to stop goes on while some live worker other than its own
        records; otherwise it is finished from what its recorder left."""
        if self.recorders.shared_data_dir is None or not continuable(recording) or recording.wanted_state == STOPPED:
            return False
        gone = {recording.owner_id} if recording.owner_id is not None else set()
        return await recorders_elsewhere(self.db, gone) > 0

    async def recover(self, recording_id: str) -> None:
        """Finish the capture of a recording whose recorder is gone: its spool into complete files, capture
        ended, the upload queued. Nothing when another process still holds it."""
        recording = await self.recorders.claim_for_recovery(recording_id)
        if recording is None:
            return
        try:
            spool = spool_dir(self.data_dir, recording_id)
            interactive = recording.output_file_name.endswith(".tar")
            # An interactive recording's segments are written in their own folder, and are what it wrote last.
            written_in = hls_dir(spool) if interactive and hls_dir(spool).is_dir() else spool
            stopped_at = crash_time(recording, written_in, utcnow())
            reason = INTERNAL_ERROR
            if recording.wanted_state == STOPPED and recording.wanted_at is not None:
                stopped_at = min(stopped_at, max(recording.wanted_at, recording.started_time or recording.wanted_at))
                reason = recording.wanted_reason or INTERNAL_ERROR
            log.warning("recording %s: its recorder is gone (%s); finishing its file", recording_id, recording.status)
            if recording.type == Kind.TRACK.value:
                # One file per track, and no manifest yet: the upload rebuilds it from the file names.
                tracks = [path for path in spool.glob("*") if TRACK_FILE.match(path.name)]
                sizes = [await asyncio.to_thread(remux_in_place, path) for path in tracks]
                file_size, captured_media = (sum(sizes) if sizes else None), bool(sizes)
            elif interactive:
                # Its complete segments play as they are: they go into the tar as they are (a separate audio file
                # is remuxed like any spool file).
                tar = spool / recording.output_file_name
                file_size, captured_media = await asyncio.to_thread(package_hls, hls_dir(spool), tar), True
                for path in spool.glob("*.*"):
                    if path != tar:
                        await asyncio.to_thread(remux_in_place, path)
            else:
                # Copy the packets into a complete file: a WebM cut off by the crash has no duration.
                remuxed = {path.name: await asyncio.to_thread(remux_in_place, path) for path in spool.glob("*.*")}
                file_size, captured_media = remuxed.get(recording.output_file_name), True
            await self.reports.end_capture(
                recording_id,
                reason,
                file_size=file_size,
                stopped_at=stopped_at,
                captured_media=captured_media,
                owner_id=self.recorders.node_id,
            )
        except BaseException:
            await self.recorders.release(recording_id)  # the next pass tries again, without waiting for a lease
            raise
        finally:
            self.recorders.recovered(recording_id)

    async def _submit(self, job: Job) -> None:
        async with self.db.write() as session:
            await self.jobs.submit(session, job)

    def _on_control(self, recording_id: str) -> None:
        task = asyncio.ensure_future(self._recover_if_orphaned(recording_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recover_if_orphaned(self, recording_id: str) -> None:
        """A stop was asked: if no recorder holds the recording to apply it, apply it here."""
        try:
            recording = await self.reports.get(recording_id)
            if (
                recording is not None
                and recording.status in (Status.RECORDING.value, Status.PAUSED.value)
                and recording.wanted_state == STOPPED
                and not self.recorders.owns(recording_id)
                and not owner_is_live(recording, self.recorders.node_id, utcnow())
            ):
                await self.recover(recording_id)
        except Exception:
            log.exception("recording %s: finishing it for a stop failed; the next pass tries again", recording_id)
