"""Changes to a recording row that every role makes the same way: lock it, move its status (with its webhook
event in the same transaction), end its capture. The API, the recorders and the reconciler all use these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.db.models import Recording
from recordkit.recording.lifecycle import ACTIVE, Event, IllegalTransition, Kind, Status, next_status
from recordkit.webhooks.events import queue_status_update

ALL_PEERS_LEFT = {"reason": "ALL_PEERS_LEFT", "caller": None}
INTERNAL_ERROR = {"reason": "INTERNAL_ERROR", "caller": None}
MAX_SECONDS_REACHED = {"reason": "API_CALL", "caller": None}


async def lock_recording(session: AsyncSession, recording_id: str) -> Recording:
    return (await session.execute(select(Recording).where(Recording.id == recording_id).with_for_update())).scalar_one()


def close_pause(recording: Recording, now: datetime) -> None:
    if recording.paused_at is not None:
        recording.paused_total_ms += round((now - recording.paused_at).total_seconds() * 1000)
        recording.paused_at = None


def set_capture_end(recording: Recording, now: datetime, reason: dict[str, Any]) -> None:
    close_pause(recording, now)
    recording.stopped_time = now
    recording.stop_reason = reason


async def end_capture_in(
    session: AsyncSession, recording: Recording, stop_reason: dict[str, Any], now: datetime, captured_media: bool
) -> Status | None:
    """End capture in this transaction; the new status (UPLOADING, or ERRORED for a track recording that
    captured nothing), or None when the recording was no longer capturing."""
    try:
        target = next_status(Status(recording.status), Event.CAPTURE_ENDED, Kind(recording.type), captured_media)
    except IllegalTransition:
        return None
    set_capture_end(recording, now, stop_reason)
    await change_status(session, recording, target, now)
    return target


async def change_status(session: AsyncSession, recording: Recording, target: Status, now: datetime) -> None:
    """Move to `target` and queue its webhook event. Leaving INVOKED/RECORDING/PAUSED ends any claim on the
    recorder; a terminal state drops the storage secrets."""
    recording.status = target.value
    recording.updated_at = now
    if target not in ACTIVE:
        recording.owner_id = None
        recording.lease_expires_at = None
    if target in (Status.ERRORED, Status.UPLOADED):
        recording.storage_secrets = None
    await session.flush()
    await queue_status_update(session, recording, now)
