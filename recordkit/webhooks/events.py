"""Webhook event bodies — `recording.statusUpdate` (meetings.md §7.4) and the meeting events (§7.5) — queued in
the transaction of the change with a delivery per webhook that listens (sent by `delivery.py`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.clock import to_wire
from recordkit.db.models import (
    App,
    Meeting,
    MeetingSession,
    Recording,
    SessionPeer,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
)
from recordkit.recording.timing import recording_duration_s

STATUS_UPDATE = "recording.statusUpdate"
MEETING_STARTED, MEETING_ENDED = "meeting.started", "meeting.ended"
PARTICIPANT_JOINED, PARTICIPANT_LEFT = "meeting.participantJoined", "meeting.participantLeft"
ALL_PEERS_LEFT, KICK_ALL = "ALL_PEERS_LEFT", "KICK_ALL"
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
    return orjson.dumps({"event": STATUS_UPDATE, "recording": record, "meeting": meeting_object(meeting, app, live)})


def meeting_object(meeting: Meeting, app: App, live: MeetingSession | None) -> dict[str, Any]:
    """The `meeting` of every event body (§7.4): the meeting, and the session when there is one."""
    return {
        "id": meeting.id,
        "sessionId": live.id if live else None,
        "title": meeting.title,
        "status": live.status if live else None,
        "createdAt": to_wire(meeting.created_at),
        "startedAt": to_wire(live.started_at) if live else None,
        "endedAt": to_wire(live.ended_at) if live else None,
        "organizedBy": {"id": app.id, "name": app.name},
    }


def participant_object(peer: SessionPeer) -> dict[str, Any]:
    """The `participant` of participantJoined/Left (§7.5): one peer connection of a participant."""
    return {
        "id": peer.participant_id,
        "peerId": peer.id,
        "userDisplayName": peer.display_name,
        "customParticipantId": peer.custom_participant_id,
        "presetName": peer.preset_name,
        "joinedAt": to_wire(peer.joined_at),
        "leftAt": to_wire(peer.left_at),
    }


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


async def queue_meeting_event(
    session: AsyncSession,
    event: str,
    meeting: Meeting,
    live: MeetingSession,
    now: datetime,
    *,
    reason: str | None = None,
    peer: SessionPeer | None = None,
) -> None:
    """Queue `meeting.started`/`ended` (with `reason`) or `meeting.participantJoined`/`Left` (with `peer`) in the
    open transaction (meetings.md §7.5); their order is the meeting's."""
    app = await session.get(App, meeting.app_id)
    assert app is not None
    body: dict[str, Any] = {"event": event, "meeting": meeting_object(meeting, app, live)}
    if peer is None:
        body["reason"] = reason
    else:
        body["participant"] = participant_object(peer)
    outbox = WebhookEvent(app_id=meeting.app_id, recording_id=None, event=event, body=orjson.dumps(body).decode(),
                          created_at=now)  # fmt: skip
    session.add(outbox)
    await session.flush()
    await queue_deliveries(session, outbox, stream=meeting.id, now=now)


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
