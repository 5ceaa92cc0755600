"""Sessions (meetings.md §6): when a meeting's session starts and ends, and who was in it.

A session starts when a participant's peer connects to a meeting with no live session. When the
last peer leaves, the session is *emptied*; it ends `session_keep_alive_time_in_secs` later unless
someone rejoins first, which continues the same session. kick-all ends it at once.

These are plain functions over a `Database`, called by the API, by the media plane (peers joining
and leaving) and by a periodic sweep (`expire_idle_sessions`). Each change runs in one write
transaction that first locks the meeting row (see `service.lock_meeting`), so concurrent joins and
leaves of one meeting queue behind each other. `SessionEvents` is the seam through which other parts
of recordkit act on a session starting or ending in that same transaction (recordings.md §7.4:
ending a session stops its recordings; §7.7: record_on_start).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.clock import utcnow
from recordkit.db.engine import Database
from recordkit.db.models import Meeting, MeetingSession, Participant, SessionPeer
from recordkit.db.paging import fetch_page
from recordkit.errors import NotFound, UnknownId
from recordkit.meetings.service import lock_meeting
from recordkit.webhooks.events import (
    ALL_PEERS_LEFT,
    KICK_ALL,
    MEETING_ENDED,
    MEETING_STARTED,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    queue_meeting_event,
)

log = logging.getLogger(__name__)

LIVE = "LIVE"
ENDED = "ENDED"

SessionHook = Callable[[AsyncSession, MeetingSession], Awaitable[None]]


class NoActiveSession(NotFound):
    """The meeting has no live session to act on."""

    def __init__(self, meeting_id: str) -> None:
        super().__init__(f"No active session found for meeting_id {meeting_id}")


@dataclass(frozen=True)
class SessionEvents:
    """Hooks run inside the transaction that starts or ends a session, after the change is flushed."""

    started: SessionHook | None = None
    ended: SessionHook | None = None


@dataclass(frozen=True)
class SessionEnd:
    """An ended session and the peers that were still connected: the media plane must close them."""

    session: MeetingSession
    disconnected: list[SessionPeer] = field(default_factory=list)


def minutes_between(start: datetime, end: datetime) -> float:
    """Fractional minutes from `start` to `end`."""
    return (end - start).total_seconds() / 60


def peer_minutes(peer: SessionPeer, now: datetime) -> float:
    """How long the peer was (or, while connected, has been) in the session, in minutes."""
    return minutes_between(peer.joined_at, peer.left_at or now)


def idle_deadline(session: MeetingSession, meeting: Meeting) -> datetime | None:
    """When an emptied live session ends unless someone rejoins; None while anyone is connected."""
    if session.status != LIVE or session.live_participants > 0 or session.emptied_at is None:
        return None
    return session.emptied_at + timedelta(seconds=meeting.session_keep_alive_time_in_secs)


async def live_session(session: AsyncSession, meeting_id: str) -> MeetingSession | None:
    """The meeting's LIVE session, if one is running."""
    return (
        await session.execute(
            select(MeetingSession).where(MeetingSession.meeting_id == meeting_id, MeetingSession.status == LIVE)
        )
    ).scalar_one_or_none()


async def peer_joined(
    db: Database,
    meeting_id: str,
    participant_id: str,
    *,
    now: datetime | None = None,
    events: SessionEvents | None = None,
    peer_id: str | None = None,
) -> SessionPeer:
    """Record that a participant's peer finished connecting; start a session if none is live.

    `peer_id` is the id the media plane already gave the peer (a new one when None).

    A session whose keep-alive ran out before this join (and was not swept yet) is ended at its
    deadline first, so the join starts a new one.
    """
    now = now or utcnow()
    async with db.write() as session:
        meeting = await lock_meeting(session, None, meeting_id)
        participant = await session.get(Participant, participant_id)
        if participant is None or participant.meeting_id != meeting.id:
            raise UnknownId("participant", participant_id)
        current = await live_session(session, meeting.id)
        if current is not None and await _end_if_idle(session, current, meeting, now, events):
            current = None
        started = current is None
        if current is None:
            current = MeetingSession(
                id=str(uuid.uuid4()),
                app_id=meeting.app_id,
                meeting_id=meeting.id,
                status=LIVE,
                live_participants=0,
                max_concurrent_participants=0,
                minutes_consumed=0.0,
                started_at=now,
                ended_at=None,
                emptied_at=None,
                updated_at=now,
            )
            session.add(current)
        peer = SessionPeer(
            id=peer_id or str(uuid.uuid4()),
            session_id=current.id,
            app_id=meeting.app_id,
            meeting_id=meeting.id,
            participant_id=participant.id,
            custom_participant_id=participant.custom_participant_id,
            display_name=participant.name,
            preset_name=participant.preset_name,
            joined_at=now,
            left_at=None,
            updated_at=now,
        )
        session.add(peer)
        current.live_participants += 1
        current.max_concurrent_participants = max(current.max_concurrent_participants, current.live_participants)
        current.emptied_at = None
        current.updated_at = now
        await session.flush()
        if started:
            await queue_meeting_event(session, MEETING_STARTED, meeting, current, now)
        await queue_meeting_event(session, PARTICIPANT_JOINED, meeting, current, now, peer=peer)
        if started and events is not None and events.started is not None:
            await events.started(session, current)
    return peer


async def peer_left(
    db: Database, peer_id: str, *, now: datetime | None = None, events: SessionEvents | None = None
) -> SessionPeer:
    """Record that a peer left. Leaving twice changes nothing and returns the first `left_at`.

    The last peer out empties the session; with a keep-alive of 0 it ends right away.
    """
    now = now or utcnow()
    async with db.write() as session:
        meeting_id = await session.scalar(select(SessionPeer.meeting_id).where(SessionPeer.id == peer_id))
        if meeting_id is None:
            raise UnknownId("peer", peer_id)
        meeting = await lock_meeting(session, None, meeting_id)
        peer = (
            await session.execute(
                select(SessionPeer).where(SessionPeer.id == peer_id).execution_options(populate_existing=True)
            )
        ).scalar_one()
        if peer.left_at is None:
            await _disconnect(session, meeting, peer, now, events)
    return peer


async def disconnect_participant(
    session: AsyncSession,
    meeting: Meeting,
    participant_id: str,
    now: datetime,
    events: SessionEvents | None = None,
) -> list[SessionPeer]:
    """Mark every connected peer of the participant as left, inside the caller's transaction,
    which must hold the meeting's lock. Returns the peers the media plane must close."""
    peers = list(
        await session.scalars(
            select(SessionPeer).where(SessionPeer.participant_id == participant_id, SessionPeer.left_at.is_(None))
        )
    )
    for peer in peers:
        await _disconnect(session, meeting, peer, now, events)
    return peers


async def end_session(
    db: Database, session_id: str, *, now: datetime | None = None, events: SessionEvents | None = None
) -> SessionEnd | None:
    """End a live session now, disconnecting its peers; None when it is unknown or already ended."""
    now = now or utcnow()
    async with db.write() as session:
        meeting_id = await session.scalar(select(MeetingSession.meeting_id).where(MeetingSession.id == session_id))
        if meeting_id is None:
            return None
        meeting = await lock_meeting(session, None, meeting_id)
        current = await _reload(session, session_id)
        if current.status != LIVE:
            return None
        return SessionEnd(current, await _end(session, meeting, current, now, now, events, KICK_ALL))


async def end_live_session(
    db: Database,
    app_id: str,
    meeting_id: str,
    *,
    now: datetime | None = None,
    events: SessionEvents | None = None,
) -> SessionEnd | None:
    """kick-all: end the meeting's live session now; None when it has none (404 for the caller)."""
    now = now or utcnow()
    async with db.write() as session:
        meeting = await lock_meeting(session, app_id, meeting_id)
        current = await live_session(session, meeting.id)
        if current is None:
            return None
        return SessionEnd(current, await _end(session, meeting, current, now, now, events, KICK_ALL))


async def expire_idle_sessions(
    db: Database, now: datetime | None = None, events: SessionEvents | None = None
) -> list[MeetingSession]:
    """End every emptied session whose keep-alive has run out, at the moment it ran out.

    Run it periodically (see `sweep_forever`); returns the sessions it ended.
    """
    now = now or utcnow()
    async with db.read() as session:
        candidates = (
            await session.execute(
                select(MeetingSession.id, MeetingSession.meeting_id).where(
                    MeetingSession.status == LIVE,
                    MeetingSession.live_participants == 0,
                    MeetingSession.emptied_at.is_not(None),
                )
            )
        ).all()
    ended = []
    for session_id, meeting_id in candidates:
        # One transaction per session: a sweep never holds more than one meeting's lock.
        async with db.write() as session:
            meeting = await lock_meeting(session, None, meeting_id)
            current = await _reload(session, session_id)
            if await _end_if_idle(session, current, meeting, now, events):
                ended.append(current)
    return ended


async def sweep_forever(db: Database, interval_s: float = 1.0, events: SessionEvents | None = None) -> None:
    """Call `expire_idle_sessions` every `interval_s` seconds until cancelled."""
    while True:
        try:
            await expire_idle_sessions(db, events=events)
        except Exception:
            log.exception("session sweep failed")
        await asyncio.sleep(interval_s)


async def get_session(db: Database, app_id: str, session_id: str) -> tuple[MeetingSession, str | None]:
    """The app's session with this id and its meeting's title, or 404."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(MeetingSession, Meeting.title)
                .join(Meeting, Meeting.id == MeetingSession.meeting_id)
                .where(MeetingSession.id == session_id.lower(), MeetingSession.app_id == app_id)
            )
        ).one_or_none()
    if row is None:
        raise UnknownId("session", session_id)
    return row[0], row[1]


async def active_session(db: Database, meeting: Meeting) -> MeetingSession:
    """The meeting's live session, or 404 `No active session found for meeting_id <id>`."""
    async with db.read() as session:
        current = await live_session(session, meeting.id)
    if current is None:
        raise NoActiveSession(meeting.id)
    return current


async def list_sessions(
    db: Database,
    app_id: str,
    *,
    meeting_id: str | None,
    status: str | None,
    start_time: datetime | None,
    end_time: datetime | None,
    search: str | None,
    by_minutes: bool,
    descending: bool,
    page_no: int,
    per_page: int,
) -> tuple[list[tuple[MeetingSession, str | None]], int]:
    """One page of the app's sessions with their meetings' titles, and the total count."""
    query = (
        select(MeetingSession)
        .join(Meeting, Meeting.id == MeetingSession.meeting_id)
        .where(MeetingSession.app_id == app_id)
    )
    if meeting_id is not None:
        query = query.where(MeetingSession.meeting_id == meeting_id.lower())
    if status is not None:
        query = query.where(MeetingSession.status == status)
    if start_time is not None:
        query = query.where(MeetingSession.started_at >= start_time)
    if end_time is not None:
        query = query.where(MeetingSession.started_at <= end_time)
    if search is not None:
        term = search.lower()
        query = query.where(
            or_(
                func.lower(Meeting.title).contains(term, autoescape=True),
                Meeting.id == term,
                MeetingSession.id == term,
            )
        )
    key = MeetingSession.minutes_consumed if by_minutes else MeetingSession.started_at
    columns = (key, MeetingSession.id)
    query = query.order_by(*(column.desc() if descending else column.asc() for column in columns))
    async with db.read() as session:
        found, total = await fetch_page(session, query, page_no, per_page)
        titles = await _titles(session, {item.meeting_id for item in found})
    return [(item, titles.get(item.meeting_id)) for item in found], total


async def _titles(session: AsyncSession, meeting_ids: set[str]) -> dict[str, str | None]:
    if not meeting_ids:
        return {}
    rows = await session.execute(select(Meeting.id, Meeting.title).where(Meeting.id.in_(meeting_ids)))
    return dict(rows.tuples().all())


async def list_session_peers(
    db: Database,
    session_id: str,
    *,
    by_duration: bool,
    descending: bool,
    now: datetime,
    page_no: int,
    per_page: int,
) -> tuple[list[SessionPeer], int]:
    """One page of a session's peers, by join time or by time spent, and the total count."""
    query = select(SessionPeer).where(SessionPeer.session_id == session_id)
    columns: list[ColumnElement[Any]] = [SessionPeer.joined_at, SessionPeer.id]
    if by_duration:
        columns.insert(0, _elapsed(db, now))
    query = query.order_by(*(column.desc() if descending else column.asc() for column in columns))
    async with db.read() as session:
        return await fetch_page(session, query, page_no, per_page)


def _elapsed(db: Database, now: datetime) -> ColumnElement[Any]:
    """A peer's time in the session as a sortable SQL number (units differ per dialect)."""
    end = func.coalesce(SessionPeer.left_at, now)
    if db.is_sqlite:
        return func.julianday(end) - func.julianday(SessionPeer.joined_at)
    return extract("epoch", end - SessionPeer.joined_at)


async def _reload(session: AsyncSession, session_id: str) -> MeetingSession:
    return (
        await session.execute(
            select(MeetingSession).where(MeetingSession.id == session_id).execution_options(populate_existing=True)
        )
    ).scalar_one()


async def _disconnect(
    session: AsyncSession, meeting: Meeting, peer: SessionPeer, now: datetime, events: SessionEvents | None
) -> None:
    current = await _reload(session, peer.session_id)
    peer.left_at = now
    peer.updated_at = now
    current.live_participants -= 1
    current.minutes_consumed += peer_minutes(peer, now)
    current.updated_at = now
    await queue_meeting_event(session, PARTICIPANT_LEFT, meeting, current, now, peer=peer)
    if current.live_participants == 0:
        current.emptied_at = now
        # A keep-alive of 0 puts the deadline at this very moment.
        await _end_if_idle(session, current, meeting, now, events)
    await session.flush()


async def _end_if_idle(
    session: AsyncSession, current: MeetingSession, meeting: Meeting, now: datetime, events: SessionEvents | None
) -> bool:
    """End `current` at its idle deadline if that has passed; whether it did."""
    deadline = idle_deadline(current, meeting)
    if deadline is None or deadline > now:
        return False
    await _end(session, meeting, current, deadline, now, events, ALL_PEERS_LEFT)
    return True


async def _end(
    session: AsyncSession,
    meeting: Meeting,
    current: MeetingSession,
    at: datetime,
    now: datetime,
    events: SessionEvents | None,
    reason: str,
) -> list[SessionPeer]:
    """End `current` at `at` (the kick or the keep-alive deadline), closing its connected peers; `reason` is
    `meeting.ended`'s (KICK_ALL or ALL_PEERS_LEFT)."""
    connected = list(
        await session.scalars(
            select(SessionPeer).where(SessionPeer.session_id == current.id, SessionPeer.left_at.is_(None))
        )
    )
    for peer in connected:
        peer.left_at = at
        peer.updated_at = now
        current.minutes_consumed += peer_minutes(peer, at)
    current.status = ENDED
    current.ended_at = at
    current.live_participants = 0
    current.updated_at = now
    await session.flush()
    for peer in connected:
        await queue_meeting_event(session, PARTICIPANT_LEFT, meeting, current, now, peer=peer)
    await queue_meeting_event(session, MEETING_ENDED, meeting, current, now, reason=reason)
    if events is not None and events.ended is not None:
        await events.ended(session, current)
    return connected
