"""Stored rows → wire JSON. One serializer per object, so every route shows the same fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from recordkit.clock import to_wire
from recordkit.db.models import Meeting, Recording
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
