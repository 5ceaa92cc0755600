"""The `record_tracks` job: run a track recorder for a recording and report what happens to the service.

The mirror of `worker.py` for track recordings (recordings.md §11.2): RECORDING as soon as the recorder
attaches; a stop by API or by the session ending reaches the recorder through `Recordings.captures` (the
service calls `finish()`), so the recorder itself only reports the 24 h cap and failures.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from recordkit.jobs.dispatcher import Job
from recordkit.meetings.media.plane import MediaPlane
from recordkit.meetings.sessions import live_session
from recordkit.recording.lifecycle import IllegalTransition, Status
from recordkit.recording.recorder import Ending, RecorderHooks
from recordkit.recording.service import ALL_PEERS_LEFT, INTERNAL_ERROR, Recordings
from recordkit.recording.spool import spool_dir
from recordkit.recording.track import MAX_TRACK_SECONDS, TrackPlan, TrackRecorder
from recordkit.recording.worker import MAX_SECONDS_REACHED, run_registered

log = logging.getLogger(__name__)


class TrackRecorders:
    """Runs `record_tracks` jobs in this process, reading rooms of the in-process media plane."""

    def __init__(
        self, recordings: Recordings, media: MediaPlane, data_dir: Path, max_duration_s: float = MAX_TRACK_SECONDS
    ) -> None:
        self.recordings = recordings
        self.media = media
        self.data_dir = data_dir
        self.max_duration_s = max_duration_s

    async def run(self, job: Job) -> None:
        """Record until the recording is stopped; a recording that is no longer INVOKED is left alone."""
        recording = await self.recordings.get(job.recording_id)
        if recording is None or recording.status != Status.INVOKED.value:
            return
        rid = recording.id
        if not await self._session_is_live(recording.meeting_id, recording.session_id):
            # A track recording belongs to one session (§6.4, §7.4); that one ended before we got here.
            log.info("recording %s: its session ended before the recorder started", rid)
            await self.recordings.capture_failed(rid)
            return
        recorder = TrackRecorder(
            TrackPlan.from_config(recording.config, self.max_duration_s),
            self.media.open_source(recording.meeting_id),
            spool_dir(self.data_dir, rid),
            RecorderHooks(
                first_packet=lambda began_wall_s: self._attached(recorder, began_wall_s),
                ended_by_itself=lambda ending: self._ended(rid, ending),
            ),
            recording_id=rid,
            meeting_id=recording.meeting_id,
            session_id=recording.session_id,
        )
        await run_registered(self.recordings, rid, recorder, self._ended)

    async def _session_is_live(self, meeting_id: str, session_id: str | None) -> bool:
        async with self.recordings.db.read() as session:
            live = await live_session(session, meeting_id)
        return live is not None and live.id == session_id

    async def _attached(self, recorder: TrackRecorder, began_wall_s: float) -> None:
        rid = recorder.recording_id
        began_at = datetime.fromtimestamp(began_wall_s, UTC).replace(tzinfo=None)
        try:
            recording = await self.recordings.capture_started(rid, began_at)
        except IllegalTransition:
            # Stopped (or failed) before it attached: nobody will stop this recorder any more.
            log.info("recording %s was stopped before its recorder attached", rid)
            await recorder.finish()
            return
        if not await self._session_is_live(recording.meeting_id, recording.session_id):
            # The session ended while we attached, and its end found us still INVOKED, so it could not stop
            # us: stop the way it would have (§7.4). Once RECORDING, the session's end stops us itself.
            finished = await recorder.finish()
            await self.recordings.end_capture(
                rid,
                ALL_PEERS_LEFT,
                file_size=finished.file_size,
                stopped_at=finished.ended_at,
                captured_media=finished.captured_media,
            )

    async def _ended(self, recording_id: str, ending: Ending) -> None:
        finished = ending.finished
        reason = MAX_SECONDS_REACHED if ending.reason == "max_seconds" else INTERNAL_ERROR
        ended = await self.recordings.end_capture(
            recording_id,
            reason,
            file_size=finished.file_size,
            stopped_at=finished.ended_at,
            captured_media=finished.captured_media,
        )
        if ended is None:
            # Still INVOKED (it failed while attaching): ERRORED with no file.
            await self.recordings.capture_failed(recording_id)
