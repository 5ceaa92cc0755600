"""The `record_tracks` job: claim a track recording, run its recorder here, report what happens to the row.

The mirror of `worker.py` for track recordings (recordings.md §11.2): RECORDING as soon as the recorder
attaches; a stop by API or by the session ending reaches the recorder through its row (ownership.py), so the
recorder itself only reports the 24 h cap and failures.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from recordkit.jobs.kinds import JobKind, RetryPolicy
from recordkit.meetings.sessions import live_session
from recordkit.recorder.composite import Ending, RecorderHooks
from recordkit.recorder.spool import spool_dir
from recordkit.recorder.track import MAX_TRACK_SECONDS, TrackPlan, TrackRecorder
from recordkit.recording.capacity import TRACK_UNITS
from recordkit.recording.lifecycle import IllegalTransition
from recordkit.recording.reports import CaptureReports
from recordkit.recording.rows import ALL_PEERS_LEFT, INTERNAL_ERROR, MAX_SECONDS_REACHED
from recordkit.recording.work import WorkContext
from recordkit.recording.worker import record_gave_up

log = logging.getLogger(__name__)


async def record_tracks(context: WorkContext, recording_id: str, max_duration_s: float = MAX_TRACK_SECONDS) -> None:
    """Once this process has room for a track recording, record until it is stopped; a recording no longer
    INVOKED, or held by another process, is left alone."""
    async with context.capture_slots.held(TRACK_UNITS):
        await _record_tracks(context, recording_id, max_duration_s)


async def _record_tracks(context: WorkContext, recording_id: str, max_duration_s: float) -> None:
    recording = await context.recorders.claim(recording_id)
    if recording is None:
        return
    if not await session_is_live(context.reports, recording.meeting_id, recording.session_id):
        # A track recording belongs to one session (§6.4, §7.4); that one ended before we got here.
        log.info("recording %s: its session ended before the recorder started", recording_id)
        await context.reports.capture_failed(recording_id)
        return
    endings = TrackEndings(context.reports, recording_id, context.recorders.node_id)
    recorder = TrackRecorder(
        TrackPlan.from_config(recording.config, max_duration_s),
        await context.sources.open(recording),
        spool_dir(context.settings.data_dir, recording_id),
        RecorderHooks(
            first_packet=lambda began_wall_s: attached(context.reports, recorder, began_wall_s, endings.owner_id),
            ended_by_itself=endings,
        ),
        recording_id=recording_id,
        meeting_id=recording.meeting_id,
        session_id=recording.session_id,
        settings=context.recorder_settings,
    )
    await context.recorders.run(recording_id, recorder, endings)


async def session_is_live(reports: CaptureReports, meeting_id: str, session_id: str | None) -> bool:
    async with reports.db.read() as session:
        live = await live_session(session, meeting_id)
    return live is not None and live.id == session_id


async def attached(reports: CaptureReports, recorder: TrackRecorder, began_wall_s: float, owner_id: str) -> None:
    rid = recorder.recording_id
    began_at = datetime.fromtimestamp(began_wall_s, UTC).replace(tzinfo=None)
    try:
        recording = await reports.capture_started(rid, began_at)
    except IllegalTransition:
        # Stopped (or failed) before it attached: nobody will stop this recorder any more.
        log.info("recording %s was stopped before its recorder attached", rid)
        await recorder.finish()
        return
    if not await session_is_live(reports, recording.meeting_id, recording.session_id):
        # The session ended while we attached, and its end found us still INVOKED, so it could not stop us:
        # stop the way it would have (§7.4). Once RECORDING, the session's end stops us itself.
        finished = await recorder.finish()
        await reports.end_capture(
            rid,
            ALL_PEERS_LEFT,
            file_size=finished.file_size,
            stopped_at=finished.ended_at,
            captured_media=finished.captured_media,
            owner_id=owner_id,
        )


class TrackEndings:
    """How a track recorder that stopped by itself ends its recording (§7.4)."""

    def __init__(self, reports: CaptureReports, recording_id: str, owner_id: str) -> None:
        self.reports = reports
        self.recording_id = recording_id
        self.owner_id = owner_id

    async def __call__(self, ending: Ending) -> None:
        finished = ending.finished
        reason = MAX_SECONDS_REACHED if ending.reason == "max_seconds" else INTERNAL_ERROR
        ended = await self.reports.end_capture(
            self.recording_id,
            reason,
            file_size=finished.file_size,
            stopped_at=finished.ended_at,
            captured_media=finished.captured_media,
            owner_id=self.owner_id,
        )
        if ended is None:
            # Still INVOKED (it failed while attaching): ERRORED with no file.
            await self.reports.capture_failed(self.recording_id)


RECORD_TRACKS = JobKind(
    name="record_tracks",
    queue="record_tracks",
    policy=RetryPolicy(attempts=3, first_delay_s=1.0, max_delay_s=10.0),
    run=record_tracks,
    gave_up=record_gave_up,
)
