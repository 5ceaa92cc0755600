"""Routes: joining a meeting's media (meetings.md §8) — signalling and the slots a page labels tiles by,
asked for (GET .../slots) or pushed as they change (GET .../slots/events, server-sent events).

Served at the host root, not under the account prefixes, for participant tokens (given as
`Authorization: Bearer` or `?authToken=`). Checks run in the order of recordings.md §2.3: token (401),
API token (403), meeting unknown in the token's app (404), body (400, the SDP included), token of
another meeting (403), then state: meeting INACTIVE (409), the participant's connections at their limit
(409), server at capacity (503).

A recorder token (a recorder on another process, docs/recorder-join.md) may offer and leave too, and
joins a hidden peer: its offer may only receive (a sending section is a 400), and it follows the room on
GET .../peers/{peer_id}/room instead of the slot routes (each kind of token gets 403 on the other's).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from recordkit.api import errors
from recordkit.api.auth import authorize_joiner, authorize_participant
from recordkit.api.envelope import ok
from recordkit.api.requests import checked_body
from recordkit.api.routing import described
from recordkit.clock import to_wire
from recordkit.db.models import Meeting, Participant, Preset
from recordkit.meetings.media.offer import KINDS, SENDING, OfferRejected, read_offer
from recordkit.meetings.media.peer import Peer, Slot
from recordkit.meetings.media.plane import AtCapacity, MediaPlane, TooManyConnections
from recordkit.meetings.media.room import Room
from recordkit.meetings.service import MeetingInactive
from recordkit.meetings.tokens import RecorderClaims
from recordkit.schema import Field, Obj, Str

router = APIRouter(tags=["joining"])

OFFER_BODY = Obj(
    (
        Field("type", Str(enum=("offer",)), required=True),
        Field("sdp", Str(min_length=1, max_length=256 * 1024), required=True),
    )
)
LEAVE_BODY = Obj((Field("peer_id", Str(format="uuid"), required=True),))

# The slot stream wakes this often with nothing to say, to end itself once the server is shutting down:
# uvicorn waits for open responses before it drains, so a stream that never ended would hold that up.
SLOT_EVENTS_WAKE_S = 1.0
# A comment line this often keeps idle connections from being cut by proxies on the way.
SLOT_EVENTS_KEEPALIVE_S = 15.0
SLOT_EVENTS_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


@router.post(
    "/meet/{meeting_id}/offer",
    summary="Join: post an SDP offer, get the answer",
    openapi_extra=described(body=OFFER_BODY, errors=(400, 401, 403, 404, 409, 413)),
)
async def post_offer(request: Request, meeting_id: str) -> Response:
    caller, meeting = await authorize_joiner(request, meeting_id)
    body = await checked_body(request, OFFER_BODY)
    may_produce = await _may_produce(request, caller)
    try:
        offer = read_offer(body["sdp"], may_produce)
    except OfferRejected as exc:
        raise errors.bad_request(f'"sdp" {exc.detail}') from None
    if isinstance(caller, RecorderClaims):
        sending = [section.index for section in offer.sections if section.offered in SENDING]
        if sending:
            raise errors.bad_request(f'"sdp" section {sending[0]} sends, and a recorder only receives')
    _check_meeting(caller, meeting)
    if meeting.status == "INACTIVE":
        raise MeetingInactive(meeting.id)
    media = _media(request)
    try:
        if isinstance(caller, RecorderClaims):
            peer_id, answer = await media.join_recorder(meeting.id, caller.recording_id, offer)
        else:
            peer_id, answer = await media.join(meeting.id, caller, offer)
    except AtCapacity:
        raise errors.ApiError(503, "Server is at capacity, try again later") from None
    except TooManyConnections as exc:
        raise errors.conflict(str(exc)) from None
    except OfferRejected as exc:
        raise errors.bad_request(f'"sdp" {exc.detail}') from None
    return ok({"peer_id": peer_id, "type": "answer", "sdp": answer})


@router.post(
    "/meet/{meeting_id}/leave",
    summary="Leave: end one peer's connection",
    openapi_extra=described(body=LEAVE_BODY, errors=(400, 401, 403, 404, 413)),
)
async def post_leave(request: Request, meeting_id: str) -> Response:
    caller, meeting = await authorize_joiner(request, meeting_id)
    body = await checked_body(request, LEAVE_BODY)
    _check_meeting(caller, meeting)
    peer_id = body["peer_id"].lower()
    left_at = await _media(request).leave(meeting.id, _peer_owner(caller), peer_id)
    return ok({"peer_id": peer_id, "left_at": to_wire(left_at)})


@router.get(
    "/meet/{meeting_id}/peers/{peer_id}/slots",
    summary="Who is on each receive section of a peer",
    openapi_extra=described(errors=(401, 403, 404)),
)
async def get_slots(request: Request, meeting_id: str, peer_id: str) -> Response:
    participant, meeting = await _caller(request, meeting_id)
    slots = _media(request).slots(meeting.id, participant.id, peer_id.lower())
    return ok({"peer_id": peer_id.lower(), "slots": [slot_json(slot) for slot in slots]})


@router.get(
    "/meet/{meeting_id}/peers/{peer_id}/slots/events",
    summary="Who is on each receive section of a peer, pushed as it changes (server-sent events)",
    openapi_extra=described(errors=(401, 403, 404)),
    response_class=StreamingResponse,
)
async def get_slot_events(request: Request, meeting_id: str, peer_id: str) -> Response:
    """`text/event-stream`: an `event: slots` whose data is what GET `.../slots` answers, first at once and
    then whenever a participant arrives on or leaves one of the peer's slots. The stream ends when the
    peer closes (asking again then answers 404) or the server shuts down."""
    participant, meeting = await _caller(request, meeting_id)
    peer = _media(request).peer(meeting.id, participant.id, peer_id.lower())

    async def slot_change(timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(peer.next_slot_change(), timeout_s)
        except TimeoutError:
            return False
        return True

    def slots() -> dict[str, Any]:
        return {"peer_id": peer.id, "slots": [slot_json(slot) for slot in peer.slots]}

    return _snapshot_stream(request, peer, "slots", slots, slot_change)


@router.get(
    "/meet/{meeting_id}/peers/{peer_id}/room",
    summary="A recorder's view of the room: who is in it and what each receive section carries (server-sent events)",
    openapi_extra=described(errors=(401, 403, 404)),
    response_class=StreamingResponse,
)
async def get_room_events(request: Request, meeting_id: str, peer_id: str) -> Response:
    """Recorder tokens only. `text/event-stream`: an `event: room` whose data is `room_json`, first at
    once and then whenever someone joins or leaves or one of the peer's slots changes hands. Participants
    without a slot (no tracks, or beyond the offered sections) are listed too, so a composite can show
    their tile. Ends like the slot stream: when the peer closes or the server shuts down."""
    caller, meeting = await authorize_joiner(request, meeting_id)
    if not isinstance(caller, RecorderClaims):
        raise errors.participant_forbidden()
    _check_meeting(caller, meeting)
    media = _media(request)
    peer = media.peer(meeting.id, caller.recording_id, peer_id.lower(), hidden=True)
    room = media.room(meeting.id)
    return _snapshot_stream(
        request,
        peer,
        "room",
        lambda: room_json(room, peer),
        lambda timeout_s: _room_or_slots_change(room, peer, timeout_s),
    )


def _snapshot_stream(
    request: Request,
    peer: Peer,
    event: str,
    snapshot: Callable[[], Any],
    changed: Callable[[float], Awaitable[bool]],
) -> StreamingResponse:
    """Server-sent `event`s whose data is `snapshot()`, first at once and then each time it differs after
    `changed` returned; a comment line keeps an idle stream open. Ends when the peer closes or the server
    shuts down."""
    services = request.app.state.services

    async def events() -> AsyncIterator[str]:
        sent = None
        idle_s = 0.0
        while not peer.closing and services.shutdown_requested_at is None:
            data = json.dumps(snapshot())
            if data != sent:
                yield f"event: {event}\ndata: {data}\n\n"
                sent, idle_s = data, 0.0
            elif idle_s >= SLOT_EVENTS_KEEPALIVE_S:
                yield ": keep-alive\n\n"
                idle_s = 0.0
            if not await changed(SLOT_EVENTS_WAKE_S):
                idle_s += SLOT_EVENTS_WAKE_S

    return StreamingResponse(events(), media_type="text/event-stream", headers=SLOT_EVENTS_HEADERS)


async def _room_or_slots_change(room: Room, peer: Peer, timeout_s: float) -> bool:
    """Wait until someone joins or leaves, a slot of the peer changes hands, or `timeout_s` passes;
    whether anything changed."""
    changes = {asyncio.ensure_future(room.next_change()), asyncio.ensure_future(peer.next_slot_change())}
    try:
        done, _ = await asyncio.wait(changes, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for change in changes:
            change.cancel()
    return bool(done)


def room_json(room: Room, peer: Peer) -> dict[str, list[dict[str, str | int | float | None]]]:
    """The room as a recorder peer sees it: the participants connected (in join order) and the peer's
    slots, each with the codec and clock rate of the track it carries (nulls while empty)."""
    participants: list[dict[str, str | int | float | None]] = [
        {
            "participant_id": member.participant.participant_id,
            "peer_id": member.id,
            "name": member.participant.name,
            "custom_participant_id": member.participant.custom_participant_id,
            "preset_name": member.participant.preset_name,
            "joined_at_s": member.joined_at_s,
        }
        for member in room.members()
    ]
    slots: list[dict[str, str | int | float | None]] = []
    for slot in peer.slots:
        info = slot.publication.info if slot.publication is not None else None
        slots.append(
            {**slot_json(slot), "codec": info.codec if info else None, "clock_rate": info.clock_rate if info else None}
        )
    return {"participants": participants, "slots": slots}


def slot_json(slot: Slot) -> dict[str, str | None]:
    """One receive section: its `mid` and `kind`, and the participant whose track it carries (nulls
    while empty)."""
    publication = slot.publication
    who = publication.info.participant if publication is not None else None
    return {
        "mid": slot.mid,
        "kind": slot.kind,
        "participant_id": who.participant_id if who else None,
        "peer_id": who.peer_id if who else None,
        "name": who.name if who else None,
        "custom_participant_id": who.custom_participant_id if who else None,
        "track_id": publication.info.track_id if publication is not None else None,
    }


async def _caller(request: Request, meeting_id: str) -> tuple[Participant, Meeting]:
    """The participant and the meeting, checked to be theirs (check 7 of recordings.md §2.3; routes with
    a body check it after the body)."""
    participant, meeting = await authorize_participant(request, meeting_id)
    _check_meeting(participant, meeting)
    return participant, meeting


def _check_meeting(caller: Participant | RecorderClaims, meeting: Meeting) -> None:
    if caller.meeting_id != meeting.id:
        raise errors.participant_forbidden()


def _peer_owner(caller: Participant | RecorderClaims) -> str:
    """Whose peers the caller may act on: the participant's, or the recording's (its hidden peer)."""
    return caller.recording_id if isinstance(caller, RecorderClaims) else caller.id


async def _may_produce(request: Request, caller: Participant | RecorderClaims) -> dict[str, bool]:
    if isinstance(caller, RecorderClaims):
        return dict.fromkeys(KINDS, False)
    participant = caller
    async with request.app.state.services.db.read() as session:
        preset = await session.get(Preset, participant.preset_id)
    media = (preset.permissions if preset is not None else {}).get("media", {})
    return {kind: media.get(kind, {}).get("can_produce") == "ALLOWED" for kind in KINDS}


def _media(request: Request) -> MediaPlane:
    media: MediaPlane = request.app.state.services.media
    return media
