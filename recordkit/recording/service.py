"""The recording rules applied to the database (recordings.md §6–§7): start, act, read and list.

Every state change happens inside one write transaction that first locks what it decides on, so two
concurrent calls never both win; each change queues its webhook event in that same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.api import errors
from recordkit.api.auth import Caller
from recordkit.clock import parse_iso8601, unix_ms, utcnow
from recordkit.db.engine import Database
from recordkit.db.models import Meeting, MeetingSession, Recording
from recordkit.jobs.dispatcher import Dispatcher, Job
from recordkit.recording import config as rconfig
from recordkit.recording.lifecycle import (
    ACTIVE,
    Event,
    IllegalTransition,
    Kind,
    Status,
    TrackCannotPause,
    next_status,
)
from recordkit.storage.secrets import SecretBox
from recordkit.webhooks.events import queue_status_update

ACTIVE_NAMES = tuple(status.value for status in ACTIVE)
TRACK_ACTIVE_NAMES = (Status.INVOKED.value, Status.RECORDING.value)


@dataclass(frozen=True)
class StartRequest:
    """A validated composite start: the request body and the configuration it resolves to."""

    body: dict[str, Any]
    effective: dict[str, Any]


class Recordings:
    """Start, change, read and list recordings of one recordkit deployment."""

    def __init__(
        self, db: Database, dispatcher: Dispatcher, secrets: SecretBox, server_defaults: dict[str, Any]
    ):
        self.db = db
        self.dispatcher = dispatcher
        self.secrets = secrets
        self.server_defaults = server_defaults

    async def meeting(self, app_id: str, meeting_id: str) -> Meeting:
        """The meeting of this app, or 404."""
        async with self.db.read() as session:
            meeting = await _meeting(session, app_id, meeting_id.lower())
        if meeting is None:
            raise errors.not_found("meeting", meeting_id)
        return meeting

    async def recording(self, app_id: str, recording_id: str) -> Recording:
        """The recording of this app, or 404."""
        async with self.db.read() as session:
            recording = await session.get(Recording, recording_id)
        if recording is None or recording.app_id != app_id:
            raise errors.not_found("recording", recording_id)
        return recording

    def plan(self, body: dict[str, Any], meeting: Meeting) -> StartRequest:
        """Resolve the effective configuration (§8) and check its rules (400 when broken)."""
        levels = rconfig.Levels(
            request=body, meeting=meeting.recording_config or {}, server=self.server_defaults
        )
        effective = rconfig.resolve(levels)
        try:
            rconfig.check_rules(effective)
        except rconfig.ConfigRuleBroken as broken:
            raise errors.bad_request(str(broken)) from None
        return StartRequest(body=body, effective=effective)

    async def start_composite(
        self, app_id: str, meeting: Meeting, request: StartRequest, caller: Caller
    ) -> Recording:
        """Create an INVOKED composite recording (§6.1 steps 1–3) and dispatch its recorder."""
        now = utcnow()
        effective = request.effective
        async with self.db.write() as session:
            locked = await _lock_meeting(session, app_id, meeting.id)
            if locked.status == "INACTIVE":
                raise errors.conflict(f"Meeting {meeting.id} is INACTIVE")
            active = (
                (
                    await session.execute(
                        select(Recording.allow_multiple).where(
                            Recording.meeting_id == meeting.id,
                            Recording.type == Kind.COMPOSITE.value,
                            Recording.status.in_(ACTIVE_NAMES),
                        )
                    )
                )
                .scalars()
                .all()
            )
            wants_multiple = effective["allow_multiple_recordings"]
            if active and not (wants_multiple and all(active)):
                raise errors.conflict(f"A recording is already in progress for meeting_id {meeting.id}")
            live = await live_session(session, meeting.id)
            extension = rconfig.main_file_extension(effective)
            recording = Recording(
                id=str(uuid.uuid4()),
                app_id=app_id,
                meeting_id=meeting.id,
                type=Kind.COMPOSITE.value,
                status=Status.INVOKED.value,
                invoked_time=now,
                paused_total_ms=0,
                output_file_name=rconfig.composite_file_name(
                    effective["file_name_prefix"], meeting.id, unix_ms(now), extension
                ),
                session_id=live.id if live else None,
                start_reason={"reason": "API_CALL", "caller": caller.wire()},
                allow_multiple=wants_multiple,
                config={k: v for k, v in effective.items() if k != "storage_config"},
                storage_config=effective["storage_config"] and _public_storage(effective["storage_config"]),
                storage_secrets=self._storage_secrets(request, locked),
                updated_at=now,
            )
            session.add(recording)
            await session.flush()
            await queue_status_update(session, recording, now)
        await self.dispatcher.submit(Job("record", recording.id))
        return recording

    async def start_track(
        self, app_id: str, meeting: Meeting, body: dict[str, Any], caller: Caller
    ) -> Recording:
        """Create an INVOKED track recording of the live session (§6.4 steps 2–5)."""
        now = utcnow()
        async with self.db.write() as session:
            locked = await _lock_meeting(session, app_id, meeting.id)
            if locked.status == "INACTIVE":
                raise errors.conflict(f"Meeting {meeting.id} is INACTIVE")
            live = await live_session(session, meeting.id)
            if live is None:
                raise errors.ApiError(404, f"No active session found for meeting_id {meeting.id}")
            busy = await session.scalar(
                select(func.count()).where(
                    Recording.meeting_id == meeting.id,
                    Recording.type == Kind.TRACK.value,
                    Recording.status.in_(TRACK_ACTIVE_NAMES),
                )
            )
            if busy:
                raise errors.conflict(f"A track recording is already in progress for meeting_id {meeting.id}")
            layers = body.get("layers") or {"default": {}}
            recording = Recording(
                id=str(uuid.uuid4()),
                app_id=app_id,
                meeting_id=meeting.id,
                type=Kind.TRACK.value,
                status=Status.INVOKED.value,
                invoked_time=now,
                paused_total_ms=0,
                output_file_name=rconfig.TRACK_FILE_TEMPLATE,
                session_id=live.id,
                start_reason={"reason": "API_CALL", "caller": caller.wire()},
                allow_multiple=False,
                config={
                    "layers": {
                        name: {
                            "file_name_prefix": layer.get("file_name_prefix", "default"),
                            "media_kind": layer.get("media_kind", "audio"),
                        }
                        for name, layer in layers.items()
                    },
                    "user_ids": body.get("user_ids"),
                },
                storage_config=None,
                updated_at=now,
            )
            session.add(recording)
            await session.flush()
            await queue_status_update(session, recording, now)
        await self.dispatcher.submit(Job("record_tracks", recording.id))
        return recording

    async def act(self, recording: Recording, action: str, caller: Caller) -> Recording:
        """Apply pause, resume or stop (§6.5, §7.2) atomically; 409 when the state forbids it."""
        event = Event(action)
        now = utcnow()
        async with self.db.write() as session:
            current = (
                await session.execute(select(Recording).where(Recording.id == recording.id).with_for_update())
            ).scalar_one()
            try:
                target = next_status(Status(current.status), event, Kind(current.type))
            except TrackCannotPause:
                raise errors.conflict(
                    f"Recording {current.id} is a track recording; cannot {action}"
                ) from None
            except IllegalTransition:
                raise errors.conflict(
                    f"Recording {current.id} is in state {current.status}; cannot {action}"
                ) from None
            if event is Event.STOP:
                _end_capture(current, now, {"reason": "API_CALL", "caller": caller.wire()})
            elif event is Event.PAUSE:
                current.paused_at = now
            else:
                _close_pause(current, now)
            await _change(session, current, target, now)
        return current

    async def capture_started(self, recording_id: str) -> Recording:
        """The recorder wrote its first frame: INVOKED → RECORDING (§7.4)."""
        now = utcnow()
        async with self.db.write() as session:
            current = (
                await session.execute(select(Recording).where(Recording.id == recording_id).with_for_update())
            ).scalar_one()
            target = next_status(Status(current.status), Event.CAPTURE_STARTED, Kind(current.type))
            current.started_time = now
            if current.session_id is None:
                live = await live_session(session, current.meeting_id)
                current.session_id = live.id if live else None
            await _change(session, current, target, now)
        return current

    async def active_recording(self, meeting_id: str) -> Recording | None:
        """The latest active composite recording of the meeting (§6.3), if any."""
        async with self.db.read() as session:
            return (
                await session.execute(
                    select(Recording)
                    .where(
                        Recording.meeting_id == meeting_id,
                        Recording.type == Kind.COMPOSITE.value,
                        Recording.status.in_(ACTIVE_NAMES),
                    )
                    .order_by(Recording.invoked_time.desc(), Recording.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()

    async def list(
        self, app_id: str, query: dict[str, Any], now: datetime
    ) -> tuple[Sequence[tuple[Recording, Meeting]], int]:
        """One page of the app's recordings with their meetings, and the count over all pages (§6.2)."""
        page_no = query.get("page_no") or 1
        per_page = query.get("per_page") or 20
        conditions = _list_conditions(app_id, query, now)
        needs_meeting = "search" in query
        count: Select[Any] = select(func.count()).select_from(Recording)
        if needs_meeting:
            count = count.join(Meeting, Meeting.id == Recording.meeting_id)
        descending = query.get("sort_order", "DESC") == "DESC"
        order = (
            (Recording.invoked_time.desc(), Recording.id.desc())
            if descending
            else (Recording.invoked_time.asc(), Recording.id.asc())
        )
        page = (
            select(Recording, Meeting)
            .join(Meeting, Meeting.id == Recording.meeting_id)
            .where(*conditions)
            .order_by(*order)
            .offset((page_no - 1) * per_page)
            .limit(per_page)
        )
        async with self.db.read() as session:
            total = await session.scalar(count.where(*conditions)) or 0
            rows = (await session.execute(page)).tuples().all()
        return rows, total

    def _storage_secrets(self, request: StartRequest, meeting: Meeting) -> str | None:
        effective = request.effective
        if not effective["storage_config"]:
            return None
        if effective["storage_level"] == "meeting":
            return meeting.recording_secrets
        from recordkit.storage.config import split_secrets

        return self.secrets.seal(split_secrets(effective["storage_config"])[1])


def _public_storage(config: dict[str, Any]) -> dict[str, Any]:
    from recordkit.storage.config import split_secrets

    return split_secrets(config)[0]


def _list_conditions(app_id: str, query: dict[str, Any], now: datetime) -> list[Any]:
    conditions: list[Any] = [Recording.app_id == app_id]
    if "meeting_id" in query:
        conditions.append(Recording.meeting_id == query["meeting_id"].lower())
    if "status" in query:
        conditions.append(Recording.status.in_(sorted(set(query["status"]))))
    if "expired" in query:
        expiry = Recording.download_url_expiry
        conditions.append(and_(expiry.is_not(None), expiry < now if query["expired"] else expiry >= now))
    if "start_time" in query:
        conditions.append(Recording.invoked_time >= parse_iso8601(query["start_time"]))
    if "end_time" in query:
        conditions.append(Recording.invoked_time <= parse_iso8601(query["end_time"]))
    if "search" in query:
        term = query["search"].lower()
        conditions.append(
            or_(func.lower(Meeting.title).contains(term, autoescape=True), Recording.meeting_id == term)
        )
    return conditions


async def _meeting(session: AsyncSession, app_id: str, meeting_id: str) -> Meeting | None:
    meeting = await session.get(Meeting, meeting_id)
    return meeting if meeting is not None and meeting.app_id == app_id else None


async def _lock_meeting(session: AsyncSession, app_id: str, meeting_id: str) -> Meeting:
    """Lock the meeting row: starts for one meeting queue behind each other (PostgreSQL); on SQLite
    the write transaction already holds the database's single write lock."""
    return (
        await session.execute(
            select(Meeting).where(Meeting.id == meeting_id, Meeting.app_id == app_id).with_for_update()
        )
    ).scalar_one()


async def live_session(session: AsyncSession, meeting_id: str) -> MeetingSession | None:
    """The meeting's LIVE session, if one is running."""
    return (
        await session.execute(
            select(MeetingSession)
            .where(MeetingSession.meeting_id == meeting_id, MeetingSession.status == "LIVE")
            .order_by(MeetingSession.started_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


def _close_pause(recording: Recording, now: datetime) -> None:
    if recording.paused_at is not None:
        recording.paused_total_ms += round((now - recording.paused_at).total_seconds() * 1000)
        recording.paused_at = None


def _end_capture(recording: Recording, now: datetime, reason: dict[str, Any]) -> None:
    _close_pause(recording, now)
    recording.stopped_time = now
    recording.stop_reason = reason


async def _change(session: AsyncSession, recording: Recording, target: Status, now: datetime) -> None:
    recording.status = target.value
    recording.updated_at = now
    if target in (Status.ERRORED, Status.UPLOADED):
        recording.storage_secrets = None
    await session.flush()
    await queue_status_update(session, recording, now)
