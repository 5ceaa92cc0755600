"""`recording.statusUpdate` bodies (meetings.md §7.4), queued in the transaction of the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.clock import to_wire
from recordkit.db.models import App, Meeting, MeetingSession, Recording, WebhookEvent
from recordkit.recording.timing import recording_duration_s

STATUS_UPDATE = "recording.statusUpdate"


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
    """Write the event for `recording`'s current status into the outbox of the open transaction."""
    meeting = await session.get(Meeting, recording.meeting_id)
    app = await session.get(App, recording.app_id)
    live = await session.get(MeetingSession, recording.session_id) if recording.session_id else None
    assert meeting is not None and app is not None
    session.add(
        WebhookEvent(
            app_id=recording.app_id,
            recording_id=recording.id,
            event=STATUS_UPDATE,
            body=status_update_body(recording, meeting, app, live, now).decode(),
            created_at=now,
        )
    )
