"""Routes: joining a meeting's media (meetings.md §8) — signalling and the slots a page labels tiles by,
asked for (GET .../slots) or pushed as they change (GET .../slots/events, server-sent events).

Served at the host root, not under the account prefixes, and only for participant tokens (given as
`Authorization: Bearer` or `?authToken=`). Checks run in the order of recordings.md §2.3: token (401),
API token (403), meeting unknown in the token's app (404), body (400, the SDP included), token of
another meeting (403), then state: meeting INACTIVE (409), the participant's connections at their limit
(409), server at capacity (503).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from recordkit.api import errors
from recordkit.api.auth import authorize_participant
from recordkit.api.envelope import ok
from recordkit.api.requests import checked_body
from recordkit.api.routing import described
from recordkit.clock import to_wire
from recordkit.db.models import Meeting, Participant, Preset
from recordkit.meetings.media.offer import KINDS, OfferRejected, read_offer
from recordkit.meetings.media.peer import Slot
from recordkit.meetings.media.plane import AtCapacity, MediaPlane, TooManyConnections
from recordkit.meetings.service import MeetingInactive
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
    participant, meeting = await _caller(request, meeting_id, own_meeting=False)
    body = await checked_body(request, OFFER_BODY)
    may_produce = await _may_produce(request, participant)
    try:
        offer = read_offer(body["sdp"], may_produce)
    except OfferRejected as exc:
        raise errors.bad_request(f'"sdp" {exc.detail}') from None
    _check_meeting(participant, meeting)
    if meeting.status == "INACTIVE":
        raise MeetingInactive(meeting.id)
    try:
        peer_id, answer = await _media(request).join(meeting.id, participant, offer)
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
    participant, meeting = await _caller(request, meeting_id, own_meeting=False)
    body = await checked_body(request, LEAVE_BODY)
    _check_meeting(participant, meeting)
    peer_id = body["peer_id"].lower()
    left_at = await _media(request).leave(meeting.id, participant.id, peer_id)
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
    services = request.app.state.services

    async def events() -> AsyncIterator[str]:
        sent = None
        idle_s = 0.0
        while not peer.closing and services.shutdown_requested_at is None:
            data = json.dumps({"peer_id": peer.id, "slots": [slot_json(slot) for slot in peer.slots]})
            if data != sent:
                yield f"event: slots\ndata: {data}\n\n"
                sent, idle_s = data, 0.0
            elif idle_s >= SLOT_EVENTS_KEEPALIVE_S:
                yield ": keep-alive\n\n"
                idle_s = 0.0
            try:
                await asyncio.wait_for(peer.next_slot_change(), SLOT_EVENTS_WAKE_S)
            except TimeoutError:
                idle_s += SLOT_EVENTS_WAKE_S

    return StreamingResponse(events(), media_type="text/event-stream", headers=SLOT_EVENTS_HEADERS)


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


async def _caller(request: Request, meeting_id: str, own_meeting: bool = True) -> tuple[Participant, Meeting]:
    """The participant and the meeting; with `own_meeting`, check 7 of recordings.md §2.3 too (routes
    with a body check it after the body)."""
    participant, meeting = await authorize_participant(request, meeting_id)
    if own_meeting:
        _check_meeting(participant, meeting)
    return participant, meeting


def _check_meeting(participant: Participant, meeting: Meeting) -> None:
    if participant.meeting_id != meeting.id:
        raise errors.participant_forbidden()


async def _may_produce(request: Request, participant: Participant) -> dict[str, bool]:
    async with request.app.state.services.db.read() as session:
        preset = await session.get(Preset, participant.preset_id)
    media = (preset.permissions if preset is not None else {}).get("media", {})
    return {kind: media.get(kind, {}).get("can_produce") == "ALLOWED" for kind in KINDS}


def _media(request: Request) -> MediaPlane:
    media: MediaPlane = request.app.state.services.media
    return media
