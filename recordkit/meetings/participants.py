"""Participants (meetings.md §5): people allowed into one meeting, and their tokens.

A participant token stays valid only while its participant row exists: authentication looks the
participant up, so deleting the row revokes every token ever issued to them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from recordkit.clock import utcnow
from recordkit.db.engine import Database
from recordkit.db.models import Participant, SessionPeer
from recordkit.db.paging import fetch_page
from recordkit.errors import UnknownId
from recordkit.meetings.presets import NAMES, preset_by_name, preset_names
from recordkit.meetings.service import lock_meeting
from recordkit.meetings.sessions import SessionEvents, disconnect_participant
from recordkit.meetings.tokens import ParticipantClaims, ParticipantTokens
from recordkit.schema import Field, Obj, Str

NAME = Str(max_length=255)
PICTURE = Str(format="uri", uri_schemes=("http", "https"), max_length=2048)


def add_body(presets: Sequence[str] = NAMES) -> Obj:
    """The add-participant body; `preset_name` must name one of the app's `presets`."""
    return Obj(
        (
            Field("custom_participant_id", Str(min_length=1, max_length=255), required=True),
            Field("preset_name", Str(enum=tuple(presets)), required=True),
            Field("name", NAME, nullable=True),
            Field("picture", PICTURE, nullable=True),
        )
    )


def edit_body(presets: Sequence[str] = NAMES) -> Obj:
    """The edit-participant body: any of `name`, `picture`, `preset_name`."""
    return Obj(
        (
            Field("name", NAME, nullable=True),
            Field("picture", PICTURE, nullable=True),
            Field("preset_name", Str(enum=tuple(presets))),
        )
    )


async def app_preset_names(db: Database, app_id: str) -> tuple[str, ...]:
    """The preset names a participant of this app may be given."""
    async with db.read() as session:
        return await preset_names(session, app_id)


def issue_token(tokens: ParticipantTokens, account_id: str, participant: Participant) -> str:
    """A new token for the participant; older ones stay valid."""
    return tokens.issue(
        ParticipantClaims(
            account_id=account_id,
            app_id=participant.app_id,
            meeting_id=participant.meeting_id,
            participant_id=participant.id,
        )
    )


async def add_participant(db: Database, app_id: str, meeting_id: str, fields: dict[str, Any]) -> Participant:
    """A new participant of the meeting from validated body `fields`."""
    now = utcnow()
    async with db.write() as session:
        preset = await preset_by_name(session, app_id, fields["preset_name"])
        participant = Participant(
            id=str(uuid.uuid4()),
            app_id=app_id,
            meeting_id=meeting_id,
            custom_participant_id=fields["custom_participant_id"],
            preset_id=preset.id,
            preset_name=preset.name,
            name=fields.get("name"),
            picture=fields.get("picture"),
            created_at=now,
            updated_at=now,
        )
        session.add(participant)
    return participant


async def get_participant(db: Database, meeting_id: str, participant_id: str) -> Participant:
    """The meeting's participant with this id, or 404."""
    async with db.read() as session:
        participant = await session.get(Participant, participant_id.lower())
    if participant is None or participant.meeting_id != meeting_id:
        raise UnknownId("participant", participant_id)
    return participant


async def list_participants(
    db: Database, meeting_id: str, *, page_no: int, per_page: int
) -> tuple[list[Participant], int]:
    """One page of the meeting's participants, oldest first, and the total count."""
    query = (
        select(Participant).where(Participant.meeting_id == meeting_id).order_by(Participant.created_at, Participant.id)
    )
    async with db.read() as session:
        return await fetch_page(session, query, page_no, per_page)


async def edit_participant(db: Database, participant: Participant, fields: dict[str, Any]) -> Participant:
    """Replace the given fields of the participant."""
    async with db.write() as session:
        stored = await session.get(Participant, participant.id)
        if stored is None:
            raise UnknownId("participant", participant.id)
        if "preset_name" in fields:
            preset = await preset_by_name(session, stored.app_id, fields["preset_name"])
            stored.preset_id, stored.preset_name = preset.id, preset.name
        for name in ("name", "picture"):
            if name in fields:
                setattr(stored, name, fields[name])
        stored.updated_at = utcnow()
    return stored


async def delete_participant(
    db: Database, participant: Participant, events: SessionEvents | None = None
) -> tuple[Participant, list[SessionPeer]]:
    """Delete the participant, which revokes all their tokens, and mark their live peers as left.

    Returns the deleted row and the peers the media plane must now close.
    """
    now = utcnow()
    async with db.write() as session:
        meeting = await lock_meeting(session, participant.app_id, participant.meeting_id)
        stored = await session.get(Participant, participant.id)
        if stored is None:
            raise UnknownId("participant", participant.id)
        disconnected = await disconnect_participant(session, meeting, stored.id, now, events)
        await session.delete(stored)
    return stored, disconnected
