"""The API side of the recording service (recordings.md §6–§7): start, act, read and list.

Every state change happens inside one write transaction that first locks what it decides on (the
meeting row for starts, the recording row for changes), so two concurrent calls never both win; each
change queues its webhook event and its job in that same transaction.

The API never talks to a recorder. Pause, resume and stop write the wanted state on the recording row and
announce it; the recorder's owner, in this process or another, applies it (recording/ownership.py). A stop
answers once the owner has finalised the file and moved the row on, so its answer carries the final
`file_size` and `stopped_time` (§6.5); a recording whose owner is gone is finished by the reconciler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.clock import parse_iso8601, unix_ms, utcnow
from recordkit.db.bus import CAPTURE_ENDED, CONTROL, Bus
from recordkit.db.engine import Database
from recordkit.db.models import Meeting, MeetingSession, Recording
from recordkit.db.paging import page_offset
from recordkit.errors import Conflict, Invalid, UnknownId
from recordkit.jobs.dispatcher import Dispatcher, Job
from recordkit.meetings.callers import Caller
from recordkit.meetings.service import MeetingInactive, lock_meeting
from recordkit.meetings.sessions import NoActiveSession, live_session
from recordkit.recorder.spool import DiskFloor
from recordkit.recording import config as rconfig
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
from recordkit.recording.ownership import PAUSED, RECORDING, STOPPED
from recordkit.recording.rows import ALL_PEERS_LEFT, change_status, close_pause, lock_recording, set_capture_end
from recordkit.storage.config import split_secrets
from recordkit.storage.secrets import SecretBox
from recordkit.webhooks.events import queue_status_update

log = logging.getLogger(__name__)

ACTIVE_NAMES = tuple(status.value for status in ACTIVE)
CAPTURING_NAMES = tuple(status.value for status in CAPTURING)
TRACK_ACTIVE_NAMES = (Status.INVOKED.value, Status.RECORDING.value)
# Ids per IN (...) list: well under SQLite's and asyncpg's limits on bound parameters.
_IDS_PER_QUERY = 500
# How long a stop waits for the owner to finalise the file: past a lease (10 s) and a reconciler pass (3 s),
# so even a recording whose owner died meanwhile has been finished by the reconciler.
STOP_WAIT_S = 20.0
# How often a waiting stop looks at the row, in case the announcement of its end was missed.
STOP_POLL_S = 0.25


class StopTimedOut(Exception):
    """A stop was asked and stands, but no process finished the capture in time."""


@dataclass(frozen=True)
class StartRequest:
    """A validated composite start: the request body and the configuration it resolves to."""

    body: dict[str, Any]
    effective: dict[str, Any]


class Recordings:
    """Start, change, read and list recordings of one recordkit deployment."""

    def __init__(
        self,
        db: Database,
        jobs: Dispatcher,
        bus: Bus,
        secrets: SecretBox,
        server_defaults: dict[str, Any],
        spool_floor: DiskFloor,
    ) -> None:
        self.db = db
        self.spool_floor = spool_floor
        self.jobs = jobs
        self.bus = bus
        self.secrets = secrets
        self.server_defaults = server_defaults
        self._capture_waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        bus.subscribe(CAPTURE_ENDED, self._on_capture_ended)

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
        """Create an INVOKED composite recording (§6.1 steps 1–3) and its record job."""
        self.spool_floor.refuse_start_if_reached()
        async with self.db.write() as session:
            locked = await lock_meeting(session, app_id, meeting.id)
            _refuse_inactive(locked)
            if not await self._may_start_composite(session, locked.id, request.effective["allow_multiple_recordings"]):
                raise Conflict(f"A recording is already in progress for meeting_id {meeting.id}")
            start_reason = {"reason": "API_CALL", "caller": caller.wire()}
            return await self._insert_composite(session, locked, request, start_reason)

    async def start_track(self, app_id: str, meeting: Meeting, body: dict[str, Any], caller: Caller) -> Recording:
        """Create an INVOKED track recording of the live session (§6.4 steps 2–5)."""
        self.spool_floor.refuse_start_if_reached()
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
        """Apply pause, resume or stop (§6.5, §7.2); 409 when the state forbids it. Concurrent actions are
        serialised: an action that finds a stop under way waits for it, then answers from the state it left."""
        event = Event(action)
        while True:
            now = utcnow()
            async with self.db.write() as session:
                current = await lock_recording(session, recording.id)
                stopping = current.wanted_state == STOPPED and current.status in CAPTURING_NAMES
                if not stopping:
                    target = _checked(current, event, action)
                    await self._ask(session, current, event, target, caller, now)
            if not stopping and (event is not Event.STOP or target is Status.ERRORED):
                return current
            ended = await self._capture_end(recording.id)
            if not stopping:
                return ended  # our stop, carried out: UPLOADING (or ERRORED) with the file's final figures

    async def _ask(
        self, session: AsyncSession, current: Recording, event: Event, target: Status, caller: Caller, now: datetime
    ) -> None:
        """Write the action on the locked row: the state it moves to now, and what its recorder must do."""
        if event is Event.STOP and target is Status.ERRORED:
            # Stopped before capture began (§7.2): nothing to finalise; a recorder starting up lets go.
            set_capture_end(current, now, {"reason": "API_CALL", "caller": caller.wire()})
            await change_status(session, current, target, now)
        elif event is Event.STOP:
            # The owner ends the capture (UPLOADING) once the file is final.
            current.wanted_reason = {"reason": "API_CALL", "caller": caller.wire()}
        elif event is Event.PAUSE:
            current.paused_at = now
            await change_status(session, current, target, now)
        else:
            close_pause(current, now)
            await change_status(session, current, target, now)
        current.wanted_state = {Event.STOP: STOPPED, Event.PAUSE: PAUSED, Event.RESUME: RECORDING}[event]
        current.wanted_at = now
        await self.bus.publish(session, CONTROL, current.id)

    async def _capture_end(self, recording_id: str) -> Recording:
        """Wait until the recording has left RECORDING/PAUSED (its owner, or the reconciler, ended it)."""
        ended = asyncio.Event()
        self._capture_waiters[recording_id].add(ended)
        deadline = asyncio.get_running_loop().time() + STOP_WAIT_S
        try:
            while True:
                ended.clear()  # before the read: an end announced after it wakes the wait below
                async with self.db.read() as session:
                    current = await session.get(Recording, recording_id)
                assert current is not None
                if current.status not in CAPTURING_NAMES:
                    return current
                if asyncio.get_running_loop().time() > deadline:
                    log.error("recording %s: no process ended its capture within %.0f s", recording_id, STOP_WAIT_S)
                    raise StopTimedOut(recording_id)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STOP_POLL_S):
                        await ended.wait()
        finally:
            waiters = self._capture_waiters[recording_id]
            waiters.discard(ended)
            if not waiters:
                del self._capture_waiters[recording_id]

    def _on_capture_ended(self, recording_id: str) -> None:
        for waiting in self._capture_waiters.get(recording_id, ()):
            waiting.set()

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
        """Session hook, inside the transaction that ended it: its capturing recordings are asked to stop where
        the session ended (§7.4); their owners finalise the files once this transaction commits."""
        capturing = (
            await session.execute(
                select(Recording)
                .where(Recording.session_id == ended.id, Recording.status.in_(CAPTURING_NAMES))
                .with_for_update()
            )
        ).scalars()
        for recording in list(capturing):
            if recording.wanted_state == STOPPED:
                continue  # a stop is already under way
            recording.wanted_state = STOPPED
            recording.wanted_at = min(ended.ended_at or utcnow(), utcnow())
            recording.wanted_reason = ALL_PEERS_LEFT
            await self.bus.publish(session, CONTROL, recording.id)

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
        await self.jobs.submit(session, job)

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


def _checked(current: Recording, event: Event, action: str) -> Status:
    """The status the action moves the recording to (§7.2), or 409."""
    try:
        return next_status(Status(current.status), event, Kind(current.type))
    except TrackCannotPause:
        raise Conflict(f"Recording {current.id} is a track recording; cannot {action}") from None
    except IllegalTransition:
        raise Conflict(f"Recording {current.id} is in state {current.status}; cannot {action}") from None
