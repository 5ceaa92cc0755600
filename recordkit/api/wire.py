"""Stored rows → wire JSON. One serializer per object, so every route shows the same fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from recordkit.clock import to_wire
from recordkit.db.models import (
    App,
    Meeting,
    MeetingSession,
    Participant,
    Preset,
    Recording,
    SessionPeer,
    Webhook,
    WebhookDelivery,
)
from recordkit.meetings.sessions import peer_minutes
from recordkit.recording.timing import recording_duration_s


def number(value: float) -> float | int:
    """Integral floats as integers, so `60.0` stored reads back as `60`."""
    return int(value) if float(value).is_integer() else value


def meeting_json(meeting: Meeting) -> dict[str, Any]:
    """The Meeting object (meetings.md §4.1); recording_config holds no secrets."""
    return {
        "id": meeting.id,
        "title": meeting.title,
        "record_on_start": meeting.record_on_start,
        "live_stream_on_start": meeting.live_stream_on_start,
        "persist_chat": meeting.persist_chat,
        "summarize_on_end": meeting.summarize_on_end,
        "transcribe_on_end": meeting.transcribe_on_end,
        "ai_config": meeting.ai_config,
        "session_keep_alive_time_in_secs": number(meeting.session_keep_alive_time_in_secs),
        "status": meeting.status,
        "recording_config": meeting.recording_config,
        "created_at": to_wire(meeting.created_at),
        "updated_at": to_wire(meeting.updated_at),
    }


def recording_json(recording: Recording, now: datetime) -> dict[str, Any]:
    """The Recording object (recordings.md §5); links past their expiry read as null (§10.3)."""
    expired = recording.download_url_expiry is not None and recording.download_url_expiry <= now
    return {
        "id": recording.id,
        "meeting_id": recording.meeting_id,
        "type": recording.type,
        "status": recording.status,
        "invoked_time": to_wire(recording.invoked_time),
        "started_time": to_wire(recording.started_time),
        "stopped_time": to_wire(recording.stopped_time),
        "recording_duration": recording_duration_s(recording, now),
        "output_file_name": recording.output_file_name,
        "file_size": recording.file_size,
        "download_url": None if expired else recording.download_url,
        "download_url_expiry": to_wire(recording.download_url_expiry),
        "audio_download_url": None if expired else recording.audio_download_url,
        "session_id": recording.session_id,
        "start_reason": recording.start_reason,
        "stop_reason": recording.stop_reason,
        "storage_config": recording.storage_config,
    }


def paging(page_no: int, per_page: int, total: int, shown: int) -> dict[str, int]:
    """`paging` of a list (recordings.md §6.2): 1-based offsets, zeros for an empty page."""
    if shown == 0:
        return {"total_count": total, "start_offset": 0, "end_offset": 0}
    first = (page_no - 1) * per_page + 1
    return {"total_count": total, "start_offset": first, "end_offset": first + shown - 1}


def page_window(query: dict[str, Any]) -> tuple[int, int]:
    """`page_no` and `per_page` with their defaults: 0 reads as 1 and 20 respectively."""
    return (query.get("page_no") or 1), (query.get("per_page") or 20)


def app_json(app: App) -> dict[str, Any]:
    """The App object (meetings.md §2)."""
    return {"id": app.id, "name": app.name, "created_at": to_wire(app.created_at)}


def preset_summary_json(preset: Preset) -> dict[str, Any]:
    """A preset as listed (meetings.md §3)."""
    return {
        "id": preset.id,
        "name": preset.name,
        "created_at": to_wire(preset.created_at),
        "updated_at": to_wire(preset.updated_at),
    }


def preset_json(preset: Preset) -> dict[str, Any]:
    """A whole preset: the listed fields plus config, permissions and ui."""
    return {
        **preset_summary_json(preset),
        "config": preset.config,
        "permissions": preset.permissions,
        "ui": preset.ui,
    }


def participant_json(participant: Participant) -> dict[str, Any]:
    """The Participant object (meetings.md §5); its token is added only where one is issued."""
    return {
        "id": participant.id,
        "name": participant.name,
        "picture": participant.picture,
        "custom_participant_id": participant.custom_participant_id,
        "preset_name": participant.preset_name,
        "created_at": to_wire(participant.created_at),
        "updated_at": to_wire(participant.updated_at),
    }


def deleted_participant_json(participant: Participant) -> dict[str, Any]:
    """What DELETE participant answers."""
    return {
        "created_at": to_wire(participant.created_at),
        "custom_participant_id": participant.custom_participant_id,
        "preset_id": participant.preset_id,
        "updated_at": to_wire(participant.updated_at),
    }


def session_json(session: MeetingSession, meeting_title: str | None) -> dict[str, Any]:
    """The Session object (meetings.md §6.2)."""
    return {
        "id": session.id,
        "associated_id": session.meeting_id,
        "meeting_display_name": meeting_title or "",
        "type": "meeting",
        "status": session.status,
        "live_participants": session.live_participants,
        "max_concurrent_participants": session.max_concurrent_participants,
        "minutes_consumed": number(session.minutes_consumed),
        "organization_id": session.app_id,
        "started_at": to_wire(session.started_at),
        "ended_at": to_wire(session.ended_at),
        "created_at": to_wire(session.started_at),
        "updated_at": to_wire(session.updated_at),
    }


def session_peer_json(peer: SessionPeer, now: datetime) -> dict[str, Any]:
    """A session participant: one peer (connection); `duration` counts up to `now` while connected."""
    return {
        "id": peer.id,
        "user_id": peer.participant_id,
        "custom_participant_id": peer.custom_participant_id,
        "display_name": peer.display_name,
        "preset_name": peer.preset_name,
        "joined_at": to_wire(peer.joined_at),
        "left_at": to_wire(peer.left_at),
        "duration": number(peer_minutes(peer, now)),
        "created_at": to_wire(peer.joined_at),
        "updated_at": to_wire(peer.updated_at),
    }


def webhook_json(webhook: Webhook) -> dict[str, Any]:
    """The Webhook object (meetings.md §7.1)."""
    return {
        "id": webhook.id,
        "name": webhook.name,
        "url": webhook.url,
        "events": webhook.events,
        "enabled": webhook.enabled,
        "created_at": to_wire(webhook.created_at),
        "updated_at": to_wire(webhook.updated_at),
    }


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    """A webhook delivery as listed (meetings.md §7.1, our extension); `id` is its `rtk-uuid`."""
    return {
        "id": delivery.id,
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": to_wire(delivery.created_at),
        "finished_at": to_wire(delivery.finished_at),
    }
