"""Meetings (meetings.md §4): their fields, defaults and the recording_config they carry.

A meeting's `recording_config` is checked in full when it is written (schema, per-type storage
fields, then the effective-configuration rules against the server defaults), so a recording started
from it later — by the API or by `record_on_start` — cannot fail validation. Storage secrets are
sealed into `recording_secrets`; `recording_config` keeps only what may be echoed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.clock import utcnow
from recordkit.db.engine import Database
from recordkit.db.models import Meeting
from recordkit.db.paging import fetch_page
from recordkit.errors import Conflict, Invalid, UnknownId
from recordkit.recording.config import MEETING_RECORDING_CONFIG, ConfigRuleBroken, Levels, check_rules, resolve
from recordkit.schema import Bool, Field, Num, Obj, Str
from recordkit.storage.config import check_required, split_secrets
from recordkit.storage.secrets import SecretBox

STATUSES = ("ACTIVE", "INACTIVE")

# Writable fields in the order of the table in §4.1: validation reports the first failing one.
FIELDS = (
    Field("title", Str(max_length=255), nullable=True),
    Field("record_on_start", Bool()),
    Field("live_stream_on_start", Bool()),
    Field("persist_chat", Bool()),
    Field("summarize_on_end", Bool()),
    Field("transcribe_on_end", Bool()),
    Field("ai_config", Obj(free_form=True), nullable=True),
    Field("session_keep_alive_time_in_secs", Num(minimum=0, maximum=600)),
    Field("status", Str(enum=STATUSES)),
    Field("recording_config", MEETING_RECORDING_CONFIG, nullable=True),
)
CREATE_BODY = Obj(FIELDS)
PATCH_BODY = Obj(FIELDS)
# PUT replaces everything but `status`, which it neither reads nor resets.
PUT_BODY = Obj(tuple(spec for spec in FIELDS if spec.name != "status"))

DEFAULTS: dict[str, Any] = {
    "title": None,
    "record_on_start": False,
    "live_stream_on_start": False,
    "persist_chat": False,
    "summarize_on_end": False,
    "transcribe_on_end": False,
    "ai_config": None,
    "session_keep_alive_time_in_secs": 60,
    "status": "ACTIVE",
    "recording_config": None,
}


class MeetingInactive(Conflict):
    """An INACTIVE meeting can be neither joined nor recorded."""

    def __init__(self, meeting_id: str) -> None:
        super().__init__(f"Meeting {meeting_id} is INACTIVE")


async def create_meeting(
    db: Database,
    app_id: str,
    fields: dict[str, Any],
    *,
    secrets: SecretBox,
    server_defaults: Mapping[str, Any],
) -> Meeting:
    """A new meeting of the app from validated body `fields`; unset fields take their defaults."""
    now = utcnow()
    columns = _columns({**DEFAULTS, **fields}, secrets, server_defaults)
    meeting = Meeting(id=str(uuid.uuid4()), app_id=app_id, created_at=now, updated_at=now, **columns)
    async with db.write() as session:
        session.add(meeting)
    return meeting


async def update_meeting(
    db: Database,
    app_id: str,
    meeting_id: str,
    fields: dict[str, Any],
    *,
    replace: bool,
    secrets: SecretBox,
    server_defaults: Mapping[str, Any],
) -> Meeting:
    """PATCH (`replace=False`: given fields replace stored ones) or PUT (`replace=True`: every field
    but `status` returns to its default unless given)."""
    if replace:
        fields = {**{k: v for k, v in DEFAULTS.items() if k != "status"}, **fields}
    columns = _columns(fields, secrets, server_defaults)
    async with db.write() as session:
        meeting = await lock_meeting(session, app_id, meeting_id)
        for name, value in columns.items():
            setattr(meeting, name, value)
        meeting.updated_at = utcnow()
    return meeting


async def get_meeting(db: Database, app_id: str, meeting_id: str) -> Meeting:
    """The app's meeting with this id, or 404."""
    async with db.read() as session:
        meeting = await session.get(Meeting, meeting_id.lower())
    if meeting is None or meeting.app_id != app_id:
        raise UnknownId("meeting", meeting_id)
    return meeting


async def lock_meeting(session: AsyncSession, app_id: str | None, meeting_id: str) -> Meeting:
    """The meeting (of app `app_id`, when given), locked for the rest of the transaction on
    PostgreSQL, or 404. SQLite's write transaction already holds its single write lock.

    Everything that changes a meeting's sessions or peers takes this lock first, so one order of
    locks holds everywhere.
    """
    query = select(Meeting).where(Meeting.id == meeting_id.lower())
    if app_id is not None:
        query = query.where(Meeting.app_id == app_id)
    meeting = (await session.execute(query.with_for_update())).scalar_one_or_none()
    if meeting is None:
        raise UnknownId("meeting", meeting_id)
    return meeting


async def list_meetings(
    db: Database,
    app_id: str,
    *,
    search: str | None,
    start_time: datetime | None,
    end_time: datetime | None,
    status: str | None,
    page_no: int,
    per_page: int,
) -> tuple[list[Meeting], int]:
    """One page of the app's meetings, newest first, and the total count."""
    query = select(Meeting).where(Meeting.app_id == app_id)
    if search is not None:
        term = search.lower()
        query = query.where(or_(func.lower(Meeting.title).contains(term, autoescape=True), Meeting.id == term))
    if start_time is not None:
        query = query.where(Meeting.created_at >= start_time)
    if end_time is not None:
        query = query.where(Meeting.created_at <= end_time)
    if status is not None:
        query = query.where(Meeting.status == status)
    query = query.order_by(Meeting.created_at.desc(), Meeting.id.desc())
    async with db.read() as session:
        return await fetch_page(session, query, page_no, per_page)


def recording_level(meeting: Meeting, secrets: SecretBox) -> dict[str, Any]:
    """The meeting's recording_config with its storage secrets back in: level 2 of recordings.md §8."""
    config = dict(meeting.recording_config or {})
    if config.get("storage_config"):
        config["storage_config"] = {**config["storage_config"], **secrets.open(meeting.recording_secrets)}
    return config


def _columns(fields: dict[str, Any], secrets: SecretBox, server_defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The stored columns for validated body `fields`; recording_config becomes its public part and
    its sealed secrets."""
    columns = dict(fields)
    if "recording_config" in columns:
        columns["recording_config"], columns["recording_secrets"] = _stored_recording_config(
            columns["recording_config"], secrets, server_defaults
        )
    return columns


def _stored_recording_config(
    config: dict[str, Any] | None, secrets: SecretBox, server_defaults: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """Check a schema-valid recording_config; return its public part and its sealed secrets."""
    if config is None:
        return None, None
    storage = config.get("storage_config")
    if storage:
        check_required(storage, "recording_config.storage_config")
    try:
        check_rules(resolve(Levels(request={}, meeting=config, server=dict(server_defaults))))
    except ConfigRuleBroken as broken:
        raise Invalid(str(broken)) from None
    if not storage:
        return config, None
    public, secret = split_secrets(storage)
    return {**config, "storage_config": public}, secrets.seal(secret)
