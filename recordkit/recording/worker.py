"""The `record` job: run a composite recorder for a recording and report what happens to the service."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from recordkit.jobs.dispatcher import Job
from recordkit.meetings.media.plane import MediaPlane
from recordkit.recording.control import RunnableCapture
from recordkit.recording.lifecycle import IllegalTransition, Status
from recordkit.recording.plan import OutputPlan
from recordkit.recording.recorder import Ending, Recorder, RecorderHooks, RecorderSettings
from recordkit.recording.service import ALL_PEERS_LEFT, INTERNAL_ERROR, Recordings
from recordkit.recording.spool import spool_dir

log = logging.getLogger(__name__)

MAX_SECONDS_REACHED = {"reason": "API_CALL", "caller": None}


async def run_registered(
    recordings: Recordings,
    recording_id: str,
    recorder: RunnableCapture,
    ended: Callable[[str, Ending], Awaitable[None]],
) -> None:
    """Run a recorder where API actions reach it (`recordings.captures`) until it stops; if it fails, end the
    recording with what it captured (`ended` with reason "error")."""
    recordings.captures.add(recording_id, recorder)
    try:
        if await _stopped_meanwhile(recordings, recording_id):
            await recorder.finish()
            return
        await recorder.run()
    except Exception:
        log.exception("recording %s: the recorder failed", recording_id)
        finished = await recorder.finish()
        await ended(recording_id, Ending("error", finished, finished.captured_media))
    finally:
        recordings.captures.discard(recording_id)


async def _stopped_meanwhile(recordings: Recordings, recording_id: str) -> bool:
    """Whether the recording left INVOKED before its recorder was registered: a stop then found no recorder to
    finish and ended the row alone, so the recorder must not start."""
    recording = await recordings.get(recording_id)
    return recording is None or recording.status != Status.INVOKED.value


class CompositeRecorders:
    """Runs `record` jobs in this process, reading rooms of the in-process media plane."""

    def __init__(self, recordings: Recordings, media: MediaPlane, data_dir: Path, settings: RecorderSettings) -> None:
        self.recordings = recordings
        self.media = media
        self.data_dir = data_dir
        self.settings = settings

    async def run(self, job: Job) -> None:
        """Record until the recording is stopped; a recording that is no longer INVOKED is left alone."""
        recording = await self.recordings.get(job.recording_id)
        if recording is None or recording.status != Status.INVOKED.value:
            return
        meeting = await self.recordings.meeting_by_id(recording.meeting_id)
        assert meeting is not None
        rid = recording.id
        plan = OutputPlan.from_recording(recording.config, recording.output_file_name)
        if plan.interactive:
            # Packaging HLS segments with ID3 metadata into the .tar is not built yet: fail loudly
            # rather than hand out an MP4 named .tar.
            log.error("recording %s: interactive (HLS/ID3) output is not supported yet", rid)
            await self.recordings.capture_failed(rid)
            return
        if plan.rtmp_url:
            log.warning("recording %s: RTMP output is not supported yet; recording the file only", rid)
        recorder = Recorder(
            plan,
            self.media.open_source(recording.meeting_id),
            spool_dir(self.data_dir, rid),
            RecorderHooks(
                first_packet=lambda began_wall_s: self._started(recorder, rid, began_wall_s),
                ended_by_itself=lambda end: self._ended(rid, end),
            ),
            keep_alive_s=meeting.session_keep_alive_time_in_secs,
            settings=self.settings,
        )
        await run_registered(self.recordings, rid, recorder, self._ended)

    async def _started(self, recorder: Recorder, recording_id: str, began_wall_s: float) -> None:
        began_at = datetime.fromtimestamp(began_wall_s, UTC).replace(tzinfo=None)
        try:
            await self.recordings.capture_started(recording_id, began_at)
        except IllegalTransition:
            # Stopped (or failed) before its first frame: nobody will stop this recorder any more.
            log.info("recording %s was stopped before its first frame was written", recording_id)
            await recorder.finish()

    async def _ended(self, recording_id: str, ending: Ending) -> None:
        size, ended_at = ending.finished.file_size, ending.finished.ended_at
        if ending.reason == "max_seconds":
            await self.recordings.end_capture(recording_id, MAX_SECONDS_REACHED, file_size=size, at_max_seconds=True)
        elif ending.reason == "empty":
            await self.recordings.end_capture(recording_id, ALL_PEERS_LEFT, file_size=size, stopped_at=ended_at)
        elif ending.wrote_media:
            await self.recordings.end_capture(recording_id, INTERNAL_ERROR, file_size=size, stopped_at=ended_at)
        else:
            await self.recordings.capture_failed(recording_id)
