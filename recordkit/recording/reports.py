"""The worker side of the recording service: what recorders and uploads report, written to the recording row.

Each report is one write transaction that locks the row, applies the state machine (recordings.md §7.4),
queues its webhook event and the next job in that same transaction, and announces a capture's end so a
`stop` waiting in any process answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.clock import utcnow
from recordkit.db.bus import CAPTURE_ENDED, Bus
from recordkit.db.engine import Database
from recordkit.db.models import Meeting, Recording
from recordkit.jobs.dispatcher import Dispatcher, Job
from recordkit.meetings.sessions import live_session
from recordkit.recording.lifecycle import Event, IllegalTransition, Kind, Status, next_status
from recordkit.recording.rows import INTERNAL_ERROR, change_status, end_capture_in, lock_recording


@dataclass(frozen=True)
class UploadOutcome:
    """What the upload job achieved: whether every target holds the files (else `failure` says what failed),
    and the built-in links."""

    succeeded: bool
    file_size: int | None
    download_url: Any
    audio_download_url: str | None
    download_url_expiry: datetime | None
    failure: str | None = None


class CaptureReports:
    """Reports of the recorders and upload jobs of one deployment."""

    def __init__(self, db: Database, jobs: Dispatcher, bus: Bus) -> None:
        self.db = db
        self.jobs = jobs
        self.bus = bus

    async def get(self, recording_id: str) -> Recording | None:
        """Any recording by id, whatever its app (for workers, never for API callers)."""
        async with self.db.read() as session:
            return await session.get(Recording, recording_id)

    async def meeting_by_id(self, meeting_id: str) -> Meeting | None:
        """Any meeting by id (for workers, never for API callers)."""
        async with self.db.read() as session:
            return await session.get(Meeting, meeting_id)

    async def capture_started(self, recording_id: str, began_at: datetime | None = None) -> Recording:
        """The recorder wrote its first frame: INVOKED → RECORDING (§7.4). `began_at` is the instant its
        media starts (the file's time 0), so `recording_duration` matches the file."""
        now = utcnow()
        async with self.db.write() as session:
            current = await lock_recording(session, recording_id)
            target = next_status(Status(current.status), Event.CAPTURE_STARTED, Kind(current.type))
            current.started_time = max(current.invoked_time, min(began_at or now, now))
            if current.session_id is None:
                live = await live_session(session, current.meeting_id)
                current.session_id = live.id if live else None
            await change_status(session, current, target, now)
        return current

    async def end_capture(
        self,
        recording_id: str,
        stop_reason: dict[str, Any],
        *,
        file_size: int | None = None,
        stopped_at: datetime | None = None,
        at_max_seconds: bool = False,
        captured_media: bool = True,
        owner_id: str | None = None,
    ) -> Recording | None:
        """Capture ended (§7.4): RECORDING/PAUSED → UPLOADING with `stop_reason`, the finished file's size and
        the upload job. `stopped_at` (default now) is when capture really ended. A track recording that
        captured no media (`captured_media` False) goes to ERRORED instead. Given `owner_id`, only while that
        process still owns the recording (a recorder whose claim lapsed writes nothing).

        Returns None when the recording had already left capture (another ending won the race).
        """
        async with self.db.write() as session:
            current = await lock_recording(session, recording_id)
            if owner_id is not None and current.owner_id != owner_id:
                return None
            if at_max_seconds and current.started_time is not None:
                # §7.4: stopped_time = started_time + max_seconds exactly.
                stopped_at = current.started_time + timedelta(seconds=current.config["max_seconds"])
            ended = await self.end_capture_in(
                session, current, stop_reason, stopped_at or utcnow(), captured_media, file_size
            )
        return current if ended is not None else None

    async def end_capture_in(
        self,
        session: AsyncSession,
        recording: Recording,
        stop_reason: dict[str, Any],
        stopped_at: datetime,
        captured_media: bool,
        file_size: int | None,
    ) -> Status | None:
        """`end_capture` inside an open transaction on the locked row."""
        if Status(recording.status) not in (Status.RECORDING, Status.PAUSED):
            return None
        if file_size is not None:
            recording.file_size = file_size
        ended = await end_capture_in(session, recording, stop_reason, stopped_at, captured_media)
        if ended is Status.UPLOADING:
            await self.jobs.submit(session, Job("upload", recording.id))
        await self.bus.publish(session, CAPTURE_ENDED, recording.id)
        return ended

    async def capture_failed(self, recording_id: str) -> Recording | None:
        """The recorder failed before writing anything, or never started in time: INVOKED → ERRORED."""
        now = utcnow()
        async with self.db.write() as session:
            current = await lock_recording(session, recording_id)
            try:
                target = next_status(Status(current.status), Event.CAPTURE_FAILED, Kind(current.type))
            except IllegalTransition:
                return None
            current.stopped_time = now
            current.stop_reason = INTERNAL_ERROR
            await change_status(session, current, target, now)
            await self.bus.publish(session, CAPTURE_ENDED, current.id)
        return current

    async def applied(self, recording_id: str, owner_id: str, state: str) -> None:
        """The owner applied a wanted pause or resume: note it on the row (only while it still owns it)."""
        async with self.db.write() as session:
            current = await lock_recording(session, recording_id)
            if current.owner_id == owner_id:
                current.applied_state = state

    async def finish_upload(self, recording_id: str, outcome: UploadOutcome) -> Recording | None:
        """UPLOADING → UPLOADED when every target holds the files, else ERRORED (§7.4, §10.3).

        The built-in copy's links are set either way when it was made: a file we have is never hidden.
        """
        now = utcnow()
        async with self.db.write() as session:
            current = await lock_recording(session, recording_id)
            event = Event.UPLOAD_SUCCEEDED if outcome.succeeded else Event.UPLOAD_FAILED
            try:
                target = next_status(Status(current.status), event, Kind(current.type))
            except IllegalTransition:
                return None
            if outcome.file_size is not None:
                current.file_size = outcome.file_size
            current.download_url = outcome.download_url
            current.audio_download_url = outcome.audio_download_url
            current.download_url_expiry = outcome.download_url_expiry
            current.error_reason = outcome.failure
            await change_status(session, current, target, now)
        return current

    async def upload_gave_up(self, recording_id: str, reason: str) -> Recording | None:
        """The upload job failed for good: UPLOADING → ERRORED, `reason` naming the step (§7.4); nothing got
        a link."""
        return await self.finish_upload(recording_id, UploadOutcome(False, None, None, None, None, failure=reason))
