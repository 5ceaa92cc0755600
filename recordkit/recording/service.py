"""The recording rules applied to the database (recordings.md §6–§7): start, act, read and list.

Every state change happens inside one write transaction that first locks what it decides on (the
meeting row for starts, the recording row for changes), so two concurrent calls never both win; each
change queues its webhook event in that same transaction, and the recorder is dispatched only after
the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.clock import parse_iso8601, unix_ms, utcnow
from recordkit.db.engine import Database, after_commit
from recordkit.db.models import Meeting, MeetingSession, Recording
from recordkit.db.paging import page_offset
from recordkit.errors import Conflict, Invalid, UnknownId
from recordkit.jobs.dispatcher import Dispatcher, Job
from recordkit.meetings.callers import Caller
from recordkit.meetings.service import MeetingInactive, lock_meeting
from recordkit.meetings.sessions import NoActiveSession, live_session
from recordkit.recording import config as rconfig
from recordkit.recording.control import Captures, Finished
from recordkit.recording.lifecycle import (
    ACTIVE,
    CAPTURING,
    Event,
    IllegalTransition,
    Kind,
    Status,
    TrackCannotPause,
    next_status,
)
from recordkit.storage.config import split_secrets
from recordkit.storage.secrets import SecretBox
from recordkit.webhooks.events import queue_status_update

ACTIVE_NAMES = tuple(status.value for status in ACTIVE)
CAPTURING_NAMES = tuple(status.value for status in CAPTURING)
TRACK_ACTIVE_NAMES = (Status.INVOKED.value, Status.RECORDING.value)
ALL_PEERS_LEFT = {"reason": "ALL_PEERS_LEFT", "caller": None}
INTERNAL_ERROR = {"reason": "INTERNAL_ERROR", "caller": None}
# Ids per IN (...) list: well under SQLite's and asyncpg's limits on bound parameters.
_IDS_PER_QUERY = 500


@dataclass(frozen=True)
class UploadOutcome:
    """What the upload job achieved: whether every target holds the files, and the built-in links."""

    succeeded: bool
    file_size: int | None
    download_url: Any
    audio_download_url: str | None
    download_url_expiry: datetime | None


@dataclass(frozen=True)
class StartRequest:
    """A validated composite start: the request body and the configuration it resolves to."""

    body: dict[str, Any]
    effective: dict[str, Any]


class Recordings:
    """Start, change, read and list recordings of one recordkit deployment."""

    def __init__(
        self, db: Database, dispatcher: Dispatcher, secrets: SecretBox, server_defaults: dict[str, Any]
    ) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.secrets = secrets
        self.server_defaults = server_defaults
        self.captures = Captures()

    async def recording(self, app_id: str, recording_id: str) -> Recording:
        """The recording of this app, or 404."""
        async with self.db.read() as session:
            recording = await session.get(Recording, recording_id)
        if recording is None or recording.app_id != app_id:
            raise UnknownId("recording", recording_id)
        return recording

    def plan(self, body: dict[str, Any], meeting: Meeting) -> StartRequest:
        """Resolve the effective configuration (§8) and check its rules (400 when broken)."""
        levels = rconfig.Levels(request=body, meeting=meeting.recording_config or {}, server=self.server_defaults)
        effective = rconfig.resolve(levels)
        try:
            rconfig.check_rules(effective)
        except rconfig.ConfigRuleBroken as broken:
            raise Invalid(str(broken)) from None
        return StartRequest(body=body, effective=effective)

    async def start_composite(self, app_id: str, meeting: Meeting, request: StartRequest, caller: Caller) -> Recording:
        """Create an INVOKED composite recording (§6.1 steps 1–3); its recorder is dispatched after commit."""
        async with self.db.write() as session:
            locked = await lock_meeting(session, app_id, meeting.id)
            _refuse_inactive(locked)
            if not await self._may_start_composite(session, locked.id, request.effective["allow_multiple_recordings"]):
                raise Conflict(f"A recording is already in progress for meeting_id {meeting.id}")
            start_reason = {"reason": "API_CALL", "caller": caller.wire()}
            return await self._insert_composite(session, locked, request, start_reason)

    async def start_track(self, app_id: str, meeting: Meeting, body: dict[str, Any], caller: Caller) -> Recording:
        """Create an INVOKED track recording of the live session (§6.4 steps 2–5)."""
        now = utcnow()
        async with self.db.write() as session:
            locked = await lock_meeting(session, app_id, meeting.id)
            _refuse_inactive(locked)
            live = await live_session(session, locked.id)
            if live is None:
                raise NoActiveSession(locked.id)
            busy = await session.scalar(
                select(func.count()).where(
                    Recording.meeting_id == locked.id,
                    Recording.type == Kind.TRACK.value,
                    Recording.status.in_(TRACK_ACTIVE_NAMES),
                )
            )
            if busy:
                raise Conflict(f"A track recording is already in progress for meeting_id {locked.id}")
            layers = body.get("layers") or {"default": {}}
            recording = Recording(
                id=str(uuid.uuid4()),
                app_id=app_id,
                meeting_id=locked.id,
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
            await self._insert(session, recording, Job("record_tracks", recording.id))
        return recording

    async def act(self, recording: Recording, action: str, caller: Caller) -> Recording:
        """Apply pause, resume or stop (§6.5, §7.2) atomically; 409 when the state forbids it."""
        event = Event(action)
        now = utcnow()
        # Finalising the file takes ~0.1-0.2 s: do it before taking the row lock, which on SQLite holds up
        # every write in the server. finish() is idempotent, so a stop that then loses a race is harmless.
        finished = await self._finish_before_stop(recording, event)
        async with self.db.write() as session:
            current = await _lock_recording(session, recording.id)
            try:
                target = next_status(Status(current.status), event, Kind(current.type))
            except TrackCannotPause:
                raise Conflict(f"Recording {current.id} is a track recording; cannot {action}") from None
            except IllegalTransition:
                raise Conflict(f"Recording {current.id} is in state {current.status}; cannot {action}") from None
            capture = self.captures.get(current.id)
            if event is Event.STOP:
                if finished is None and capture is not None:
                    finished = await capture.finish()
                if finished is not None:
                    current.file_size, now = finished.file_size, max(now, finished.ended_at)
                    # A track recording that captured nothing ends ERRORED, not UPLOADING (§7.2).
                    target = next_status(Status(current.status), event, Kind(current.type), finished.captured_media)
                _end_capture(current, now, {"reason": "API_CALL", "caller": caller.wire()})
                if target is Status.UPLOADING:
                    self._dispatch_after_commit(session, Job("upload", current.id))
            elif event is Event.PAUSE:
                current.paused_at = now
                if capture is not None:
                    capture.pause()
            else:
                _close_pause(current, now)
                if capture is not None:
                    capture.resume()
            await _change(session, current, target, now)
        return current

    async def _finish_before_stop(self, recording: Recording, event: Event) -> Finished | None:
        capture = self.captures.get(recording.id)
        if event is not Event.STOP or capture is None:
            return None
        try:
            next_status(Status(recording.status), event, Kind(recording.type))
        except IllegalTransition:
            return None  # the check under the lock answers 409
        return await capture.finish()

    async def capture_started(self, recording_id: str, began_at: datetime | None = None) -> Recording:
        """The recorder wrote its first frame: INVOKED → RECORDING (§7.4). `began_at` is the instant its
        media starts (the file's time 0), so `recording_duration` matches the file."""
        now = utcnow()
        async with self.db.write() as session:
            current = await _lock_recording(session, recording_id)
            target = next_status(Status(current.status), Event.CAPTURE_STARTED, Kind(current.type))
            current.started_time = max(current.invoked_time, min(began_at or now, now))
            if current.session_id is None:
                live = await live_session(session, current.meeting_id)
                current.session_id = live.id if live else None
            await _change(session, current, target, now)
        return current

    async def end_capture(
        self,
        recording_id: str,
        stop_reason: dict[str, Any],
        *,
        file_size: int | None = None,
        stopped_at: datetime | None = None,
        at_max_seconds: bool = False,
        captured_media: bool = True,
    ) -> Recording | None:
        """Capture ended without an API call (§7.4): RECORDING/PAUSED → UPLOADING with `stop_reason`,
        and the finished file's size. `stopped_at` (default now) is when capture really ended. A track
        recording that captured no media (`captured_media` False) goes to ERRORED instead.

        Returns None when the recording had already left capture (an API stop won the race).
        """
        async with self.db.write() as session:
            current = await _lock_recording(session, recording_id)
            if file_size is not None:
                current.file_size = file_size
            if at_max_seconds and current.started_time is not None:
                # §7.4: stopped_time = started_time + max_seconds exactly.
                stopped_at = current.started_time + timedelta(seconds=current.config["max_seconds"])
            ended = await _end_capture_in(session, current, stop_reason, stopped_at or utcnow(), captured_media)
        if ended is Status.UPLOADING:
            await self.dispatcher.submit(Job("upload", recording_id))
        return current if ended is not None else None

    async def capture_failed(self, recording_id: str) -> Recording | None:
        """The recorder failed before writing anything, or never started in time: INVOKED → ERRORED."""
        now = utcnow()
        async with self.db.write() as session:
            current = await _lock_recording(session, recording_id)
            try:
                target = next_status(Status(current.status), Event.CAPTURE_FAILED, Kind(current.type))
            except IllegalTransition:
                return None
            current.stopped_time = now
            current.stop_reason = INTERNAL_ERROR
            await _change(session, current, target, now)
        return current

    async def unfinished(self) -> list[Recording]:
        """Every recording not yet UPLOADED or ERRORED, oldest first (for restart recovery)."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(Recording)
                .where(Recording.status.in_((*ACTIVE_NAMES, Status.UPLOADING.value)))
                .order_by(Recording.invoked_time)
            )
            return list(rows.scalars())

    async def invoked_before(self, cutoff: datetime) -> list[str]:
        """Ids of recordings still INVOKED that were started before `cutoff`."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(Recording.id).where(Recording.status == Status.INVOKED.value, Recording.invoked_time < cutoff)
            )
            return list(rows.scalars())

    async def expired_among(self, recording_ids: Sequence[str], now: datetime) -> list[str]:
        """Which of these recordings' download links ran out before `now`."""
        expired: list[str] = []
        async with self.db.read() as session:
            for start in range(0, len(recording_ids), _IDS_PER_QUERY):
                chunk = recording_ids[start : start + _IDS_PER_QUERY]
                rows = await session.execute(
                    select(Recording.id).where(Recording.id.in_(chunk), Recording.download_url_expiry < now)
                )
                expired += rows.scalars()
        return expired

    async def get(self, recording_id: str) -> Recording | None:
        """Any recording by id, whatever its app (for workers, never for API callers)."""
        async with self.db.read() as session:
            return await session.get(Recording, recording_id)

    async def meeting_by_id(self, meeting_id: str) -> Meeting | None:
        """Any meeting by id (for workers, never for API callers)."""
        async with self.db.read() as session:
            return await session.get(Meeting, meeting_id)

    async def finish_upload(self, recording_id: str, outcome: UploadOutcome) -> Recording | None:
        """UPLOADING → UPLOADED when every target holds the files, else ERRORED (§7.4, §10.3).

        The built-in copy's links are set either way when it was made: a file we have is never hidden.
        """
        now = utcnow()
        async with self.db.write() as session:
            current = await _lock_recording(session, recording_id)
            event = Event.UPLOAD_SUCCEEDED if outcome.succeeded else Event.UPLOAD_FAILED
            try:
                target = next_status(Status(current.status), event, Kind(current.type))
            except IllegalTransition:
                return None
            current.file_size = outcome.file_size
            current.download_url = outcome.download_url
            current.audio_download_url = outcome.audio_download_url
            current.download_url_expiry = outcome.download_url_expiry
            await _change(session, current, target, now)
        return current

    async def on_session_started(self, session: AsyncSession, live: MeetingSession) -> None:
        """Session hook, inside the transaction that started `live`: waiting recordings join the
        session (§7.6) and a `record_on_start` meeting starts recording (§7.7)."""
        waiting = (
            await session.execute(
                select(Recording).where(
                    Recording.meeting_id == live.meeting_id,
                    Recording.session_id.is_(None),
                    Recording.status.in_(ACTIVE_NAMES),
                )
            )
        ).scalars()
        for recording in waiting:
            recording.session_id = live.id
        meeting = await session.get(Meeting, live.meeting_id)
        if meeting is None or not meeting.record_on_start or meeting.status == "INACTIVE":
            return
        if await self._may_start_composite(session, meeting.id, wants_multiple=False):
            plan = self.plan({"meeting_id": meeting.id}, meeting)
            await self._insert_composite(session, meeting, plan, {"reason": "RECORD_ON_START", "caller": None})

    async def on_session_ended(self, session: AsyncSession, ended: MeetingSession) -> None:
        """Session hook, inside the transaction that ended it: its capturing recordings stop (§7.4)."""
        capturing = (
            await session.execute(
                select(Recording)
                .where(Recording.session_id == ended.id, Recording.status.in_(CAPTURING_NAMES))
                .with_for_update()
            )
        ).scalars()
        now = utcnow()
        for recording in list(capturing):
            capture = self.captures.get(recording.id)
            ended_at, captured_media = now, True
            if capture is not None:
                finished = await capture.finish()
                recording.file_size, ended_at = finished.file_size, finished.ended_at
                captured_media = finished.captured_media
            ended = await _end_capture_in(session, recording, ALL_PEERS_LEFT, ended_at, captured_media)
            if ended is Status.UPLOADING:
                self._dispatch_after_commit(session, Job("upload", recording.id))

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
        if query.get("sort_order", "DESC") == "DESC":
            order = (Recording.invoked_time.desc(), Recording.id.desc())
        else:
            order = (Recording.invoked_time.asc(), Recording.id.asc())
        count = select(func.count()).select_from(Recording).where(*conditions)
        # Pick the page's ids from the index first, so a deep page skips index entries, not joined rows.
        keys = (
            select(Recording.id)
            .where(*conditions)
            .order_by(*order)
            .offset(page_offset(page_no, per_page))
            .limit(per_page)
            .subquery("page_keys")
        )
        page = (
            select(Recording, Meeting)
            .join(keys, keys.c.id == Recording.id)
            .join(Meeting, Meeting.id == Recording.meeting_id)
            .order_by(*order)
        )
        async with self.db.read() as session:
            total = await session.scalar(count) or 0
            rows = (await session.execute(page)).tuples().all()
        return rows, total

    async def _may_start_composite(self, session: AsyncSession, meeting_id: str, wants_multiple: bool) -> bool:
        """The one-active rule (§7.3), read under the meeting's lock."""
        active = (
            (
                await session.execute(
                    select(Recording.allow_multiple).where(
                        Recording.meeting_id == meeting_id,
                        Recording.type == Kind.COMPOSITE.value,
                        Recording.status.in_(ACTIVE_NAMES),
                    )
                )
            )
            .scalars()
            .all()
        )
        return not active or (wants_multiple and all(active))

    async def _insert_composite(
        self, session: AsyncSession, meeting: Meeting, request: StartRequest, start_reason: dict[str, Any]
    ) -> Recording:
        now = utcnow()
        effective = request.effective
        live = await live_session(session, meeting.id)
        storage = effective["storage_config"]
        recording = Recording(
            id=str(uuid.uuid4()),
            app_id=meeting.app_id,
            meeting_id=meeting.id,
            type=Kind.COMPOSITE.value,
            status=Status.INVOKED.value,
            invoked_time=now,
            paused_total_ms=0,
            output_file_name=rconfig.composite_file_name(
                effective["file_name_prefix"], meeting.id, unix_ms(now), rconfig.main_file_extension(effective)
            ),
            session_id=live.id if live else None,
            start_reason=start_reason,
            allow_multiple=effective["allow_multiple_recordings"],
            config={name: value for name, value in effective.items() if name != "storage_config"},
            storage_config=split_secrets(storage)[0] if storage else None,
            storage_secrets=self._storage_secrets(effective, meeting),
            updated_at=now,
        )
        await self._insert(session, recording, Job("record", recording.id))
        return recording

    async def _insert(self, session: AsyncSession, recording: Recording, job: Job) -> None:
        session.add(recording)
        await session.flush()
        await queue_status_update(session, recording, recording.invoked_time)
        self._dispatch_after_commit(session, job)

    def _dispatch_after_commit(self, session: AsyncSession, job: Job) -> None:
        async def dispatch() -> None:
            await self.dispatcher.submit(job)

        after_commit(session, dispatch)

    def _storage_secrets(self, effective: dict[str, Any], meeting: Meeting) -> str | None:
        """The sealed secrets of the level the storage_config came from (§8: never mixed)."""
        if not effective["storage_config"]:
            return None
        if effective["storage_level"] == "meeting":
            return meeting.recording_secrets
        return self.secrets.seal(split_secrets(effective["storage_config"])[1])


def _refuse_inactive(meeting: Meeting) -> None:
    if meeting.status == "INACTIVE":
        raise MeetingInactive(meeting.id)


def _list_conditions(app_id: str, query: dict[str, Any], now: datetime) -> list[Any]:
    conditions: list[Any] = []
    if "search" in query:
        # Through the meetings of the app, so the database walks (meeting_id, status), not the whole app.
        term = query["search"].lower()
        matching = select(Meeting.id).where(
            Meeting.app_id == app_id, or_(func.lower(Meeting.title).contains(term, autoescape=True), Meeting.id == term)
        )
        conditions.append(Recording.meeting_id.in_(matching))
    else:
        conditions.append(Recording.app_id == app_id)
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
    return conditions


async def _lock_recording(session: AsyncSession, recording_id: str) -> Recording:
    return (await session.execute(select(Recording).where(Recording.id == recording_id).with_for_update())).scalar_one()


def _close_pause(recording: Recording, now: datetime) -> None:
    if recording.paused_at is not None:
        recording.paused_total_ms += round((now - recording.paused_at).total_seconds() * 1000)
        recording.paused_at = None


def _end_capture(recording: Recording, now: datetime, reason: dict[str, Any]) -> None:
    _close_pause(recording, now)
    recording.stopped_time = now
    recording.stop_reason = reason


async def _end_capture_in(
    session: AsyncSession, recording: Recording, stop_reason: dict[str, Any], now: datetime, captured_media: bool
) -> Status | None:
    """End capture in this transaction; the new status (UPLOADING, or ERRORED for a track recording that
    captured nothing), or None when the recording was no longer capturing."""
    try:
        target = next_status(Status(recording.status), Event.CAPTURE_ENDED, Kind(recording.type), captured_media)
    except IllegalTransition:
        return None
    _end_capture(recording, now, stop_reason)
    await _change(session, recording, target, now)
    return target


async def _change(session: AsyncSession, recording: Recording, target: Status, now: datetime) -> None:
    recording.status = target.value
    recording.updated_at = now
    if target in (Status.ERRORED, Status.UPLOADED):
        recording.storage_secrets = None
    await session.flush()
    await queue_status_update(session, recording, now)
