"""`recording.statusUpdate` bodies (meetings.md §7.4), queued in the transaction of the change with a delivery
per webhook that listens (sent by `delivery.py`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.clock import to_wire
from recordkit.db.models import App, Meeting, MeetingSession, Recording, Webhook, WebhookDelivery, WebhookEvent
from recordkit.recording.timing import recording_duration_s

STATUS_UPDATE = "recording.statusUpdate"
PENDING, DELIVERED, FAILED = "PENDING", "DELIVERED", "FAILED"


def status_update_body(
    recording: Recording, meeting: Meeting, app: App, live: MeetingSession | None, now: datetime
) -> bytes:
    """The compact JSON body, keys in the documented order, so re-serialising verifiers agree."""
    record: dict[str, Any] = {
        "id": recording.id,
        "recordingId": recording.id,
        "meetingId": recording.meeting_id,
        "organizationId": recording.app_id,
        "roomUUID": recording.session_id,
        "type": recording.type,
        "status": recording.status,
        "invokedTime": to_wire(recording.invoked_time),
        "startedTime": to_wire(recording.started_time),
        "stoppedTime": to_wire(recording.stopped_time),
        "outputFileName": recording.output_file_name,
        "fileSize": recording.file_size,
        "recordingDuration": recording_duration_s(recording, now),
        "downloadUrl": recording.download_url,
        "audioDownloadUrl": recording.audio_download_url,
        "downloadUrlExpiry": to_wire(recording.download_url_expiry),
        "startReason": recording.start_reason,
        "stopReason": recording.stop_reason,
    }
    meeting_part = {
        "id": meeting.id,
        "sessionId": live.id if live else None,
        "title": meeting.title,
        "status": live.status if live else None,
        "createdAt": to_wire(meeting.created_at),
        "startedAt": to_wire(live.started_at) if live else None,
        "endedAt": to_wire(live.ended_at) if live else None,
        "organizedBy": {"id": app.id, "name": app.name},
    }
    return orjson.dumps({"event": STATUS_UPDATE, "recording": record, "meeting": meeting_part})


async def queue_status_update(session: AsyncSession, recording: Recording, now: datetime) -> None:
    """Write the event for `recording`'s current status into the outbox of the open transaction, with a delivery
    for every enabled webhook of the app that asked for it."""
    meeting = await session.get(Meeting, recording.meeting_id)
    app = await session.get(App, recording.app_id)
    live = await session.get(MeetingSession, recording.session_id) if recording.session_id else None
    assert meeting is not None and app is not None
    event = WebhookEvent(
        app_id=recording.app_id,
        recording_id=recording.id,
        event=STATUS_UPDATE,
        body=status_update_body(recording, meeting, app, live, now).decode(),
        created_at=now,
    )
    session.add(event)
    await session.flush()
    await queue_deliveries(session, event, stream=recording.id, now=now)


async def queue_deliveries(session: AsyncSession, event: WebhookEvent, stream: str, now: datetime) -> None:
    """One PENDING delivery of `event` per enabled webhook of its app that listens to it."""
    webhooks = await session.execute(select(Webhook).where(Webhook.app_id == event.app_id, Webhook.enabled.is_(True)))
    for webhook in webhooks.scalars():
        if event.event in webhook.events:
            delivery = WebhookDelivery(
                id=str(uuid.uuid4()), webhook_id=webhook.id, app_id=event.app_id, event_id=event.id,
                event=event.event, stream=stream, status=PENDING, attempts=0, next_attempt_at=now, created_at=now,
            )  # fmt: skip
            session.add(delivery)
