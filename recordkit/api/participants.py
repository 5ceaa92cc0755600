"""Routes: participants of a meeting (meetings.md §5)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from recordkit.api import docs
from recordkit.api.auth import authorize
from recordkit.api.envelope import ok
from recordkit.api.listing import PAGING
from recordkit.api.requests import checked_body, checked_query
from recordkit.api.routing import described
from recordkit.api.sessions import session_events
from recordkit.api.wire import deleted_participant_json, page_window, paging, participant_json
from recordkit.db.models import Participant
from recordkit.meetings import participants, service

router = APIRouter(tags=["participants"])

PATH = "/{app_id}/meetings/{meeting_id}/participants"
ONE = PATH + "/{participant_id}"
WRITE_ERRORS = (400, 401, 403, 404, 413)


@router.post(
    PATH,
    summary="Add a participant",
    status_code=201,
    responses={201: {"model": docs.Envelope[docs.ParticipantWithToken]}},
    openapi_extra=described(body=participants.add_body(), errors=WRITE_ERRORS),
)
async def add_participant(request: Request, account_id: str, app_id: str, meeting_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    services = request.app.state.services
    meeting = await service.get_meeting(services.db, app.id, meeting_id)
    presets = await participants.app_preset_names(services.db, app.id)
    body = await checked_body(request, participants.add_body(presets))
    participant = await participants.add_participant(services.db, app.id, meeting.id, body)
    token = participants.issue_token(services.tokens, account_id, participant)
    return ok({**participant_json(participant), "token": token}, status=201)


@router.get(
    PATH,
    summary="Fetch all participants of a meeting",
    responses={200: {"model": docs.PagedEnvelope[list[docs.ParticipantModel]]}},
    openapi_extra=described(query=PAGING),
)
async def list_participants(request: Request, account_id: str, app_id: str, meeting_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    db = request.app.state.services.db
    meeting = await service.get_meeting(db, app.id, meeting_id)
    page_no, per_page = page_window(checked_query(request, PAGING))
    found, total = await participants.list_participants(db, meeting.id, page_no=page_no, per_page=per_page)
    return ok([participant_json(p) for p in found], paging=paging(page_no, per_page, total, len(found)))


@router.get(
    ONE,
    summary="Fetch a participant's details",
    responses={200: {"model": docs.Envelope[docs.ParticipantModel]}},
    openapi_extra=described(errors=(401, 403, 404)),
)
async def get_participant(
    request: Request, account_id: str, app_id: str, meeting_id: str, participant_id: str
) -> Response:
    participant = await _in_path(request, account_id, app_id, meeting_id, participant_id)
    return ok(participant_json(participant))


@router.patch(
    ONE,
    summary="Edit a participant's details",
    responses={200: {"model": docs.Envelope[docs.ParticipantModel]}},
    openapi_extra=described(body=participants.edit_body(), errors=WRITE_ERRORS),
)
async def edit_participant(
    request: Request, account_id: str, app_id: str, meeting_id: str, participant_id: str
) -> Response:
    participant = await _in_path(request, account_id, app_id, meeting_id, participant_id)
    db = request.app.state.services.db
    presets = await participants.app_preset_names(db, participant.app_id)
    body = await checked_body(request, participants.edit_body(presets))
    return ok(participant_json(await participants.edit_participant(db, participant, body)))


@router.delete(
    ONE,
    summary="Delete a participant",
    responses={200: {"model": docs.Envelope[docs.ParticipantDeleted]}},
    openapi_extra=described(errors=(401, 403, 404)),
)
async def delete_participant(
    request: Request, account_id: str, app_id: str, meeting_id: str, participant_id: str
) -> Response:
    participant = await _in_path(request, account_id, app_id, meeting_id, participant_id)
    db = request.app.state.services.db
    deleted, _ = await participants.delete_participant(db, participant, session_events(request))
    # Their session rows are closed; now drop their connections (connecting ones too) at once.
    await request.app.state.services.media.disconnect_participant(participant.meeting_id, participant.id)
    return ok(deleted_participant_json(deleted))


@router.post(
    ONE + "/token",
    summary="Refresh a participant's token",
    responses={200: {"model": docs.Envelope[docs.TokenModel]}},
    openapi_extra=described(errors=(401, 403, 404)),
)
async def refresh_token(
    request: Request, account_id: str, app_id: str, meeting_id: str, participant_id: str
) -> Response:
    participant = await _in_path(request, account_id, app_id, meeting_id, participant_id)
    return ok({"token": participants.issue_token(request.app.state.services.tokens, account_id, participant)})


async def _in_path(request: Request, account_id: str, app_id: str, meeting_id: str, participant_id: str) -> Participant:
    """Checks 1–4 of the check order for one participant: caller, app, meeting, participant."""
    _, app = await authorize(request, account_id, app_id)
    db = request.app.state.services.db
    meeting = await service.get_meeting(db, app.id, meeting_id)
    return await participants.get_participant(db, meeting.id, participant_id)
