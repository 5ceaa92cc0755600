"""The `record` job: claim a composite recording, run its recorder here, report what happens to the row."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from recordkit.jobs.kinds import JobKind, RetryPolicy
from recordkit.metrics import RecorderMeter
from recordkit.recorder.composite import Ending, Recorder, RecorderHooks
from recordkit.recorder.plan import OutputPlan
from recordkit.recorder.spool import spool_dir
from recordkit.recording.capacity import COMPOSITE_UNITS
from recordkit.recording.lifecycle import IllegalTransition
from recordkit.recording.reports import CaptureReports
from recordkit.recording.rows import ALL_PEERS_LEFT, INTERNAL_ERROR, MAX_SECONDS_REACHED
from recordkit.recording.takeover import mark_started, media_start_s, new_part
from recordkit.recording.work import WorkContext

log = logging.getLogger(__name__)


async def record(context: WorkContext, recording_id: str) -> None:
    """Once this process has room for a composite, record until the recording is stopped; a recording no longer
    INVOKED, or held by another process, is left alone."""
    async with context.capture_slots.held(COMPOSITE_UNITS):
        await _record(context, recording_id)


async def _record(context: WorkContext, recording_id: str) -> None:
    recording = await context.recorders.claim(recording_id)
    part: Path | None = None
    if recording is None:
        # Not INVOKED: perhaps capturing, with its worker gone or handing it over, for us to continue.
        recording = await context.recorders.claim_for_takeover(recording_id)
        if recording is None:
            return
        part = await asyncio.to_thread(new_part, spool_dir(context.settings.data_dir, recording_id))
        log.info("recording %s: continuing it in %s", recording_id, part.name)
    meeting = await context.reports.meeting_by_id(recording.meeting_id)
    assert meeting is not None
    plan = OutputPlan.from_recording(recording.config, recording.output_file_name)
    if part is not None:
        # max_seconds counts the whole recording: a continuing segment gets what the earlier ones left.
        left_s = plan.max_seconds - media_start_s(recording, time.time())
        plan = replace(plan, max_seconds=max(1, math.ceil(left_s)))
    endings = CompositeEndings(context.reports, recording_id, context.recorders.node_id)
    try:
        source = await context.sources.open(recording)
    except BaseException:
        await context.recorders.release(recording_id)  # any worker may try at once, without waiting for the lease
        raise

    async def first_packet(began_wall_s: float) -> None:
        if part is None:
            await started(context.reports, recorder, recording_id, began_wall_s)
        else:
            await continued(context.reports, recording_id, part, began_wall_s)

    recorder = Recorder(
        plan,
        source,
        part or spool_dir(context.settings.data_dir, recording_id),
        RecorderHooks(first_packet=first_packet, ended_by_itself=endings),
        keep_alive_s=meeting.session_keep_alive_time_in_secs,
        meter=RecorderMeter(context.metrics),
        settings=context.recorder_settings,
    )
    await context.recorders.run(recording_id, recorder, endings, part)


async def continued(reports: CaptureReports, recording_id: str, part: Path, began_wall_s: float) -> None:
    """The first frame of a continuing segment: from here on it belongs to the recording's file."""
    recording = await reports.get(recording_id)
    if recording is None or recording.started_time is None:
        return
    await asyncio.to_thread(mark_started, part, began_wall_s, media_start_s(recording, began_wall_s))


async def started(reports: CaptureReports, recorder: Recorder, recording_id: str, began_wall_s: float) -> None:
    began_at = datetime.fromtimestamp(began_wall_s, UTC).replace(tzinfo=None)
    try:
        await reports.capture_started(recording_id, began_at)
    except IllegalTransition:
        # Stopped (or failed) before its first frame: nobody will stop this recorder any more.
        log.info("recording %s was stopped before its first frame was written", recording_id)
        await recorder.finish()


class CompositeEndings:
    """How a composite recorder that stopped by itself ends its recording (§7.4)."""

    def __init__(self, reports: CaptureReports, recording_id: str, owner_id: str) -> None:
        self.reports = reports
        self.recording_id = recording_id
        self.owner_id = owner_id

    async def __call__(self, ending: Ending) -> None:
        size, ended_at = ending.finished.file_size, ending.finished.ended_at
        end, rid, owner = self.reports.end_capture, self.recording_id, self.owner_id
        if ending.reason == "max_seconds":
            await end(rid, MAX_SECONDS_REACHED, file_size=size, at_max_seconds=True, owner_id=owner)
        elif ending.reason == "empty":
            await end(rid, ALL_PEERS_LEFT, file_size=size, stopped_at=ended_at, owner_id=owner)
        elif ending.wrote_media:
            await end(rid, INTERNAL_ERROR, file_size=size, stopped_at=ended_at, owner_id=owner)
        else:
            await self.reports.capture_failed(rid)


async def record_gave_up(context: WorkContext, recording_id: str, _error: BaseException) -> None:
    """No attempt got a recorder going: a recording still INVOKED ends ERRORED (§7.4)."""
    await context.reports.capture_failed(recording_id)


# A record job fails only before its recorder runs (a recorder's own failure ends the recording instead).
RECORD = JobKind(
    name="record",
    queue="record",
    policy=RetryPolicy(attempts=3, first_delay_s=1.0, max_delay_s=10.0),
    run=record,
    gave_up=record_gave_up,
)
