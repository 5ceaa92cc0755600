"""Routes: the six Recordings endpoints (recordings.md §6). Each reads top to bottom in the check
order of §2.3: who calls → the app → path resources → fields → body resources → rules → state."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from recordkit.api import docs, listing
from recordkit.api.auth import authorize, check_own_meeting, check_participant_start
from recordkit.api.envelope import ok
from recordkit.api.errors import ApiError
from recordkit.api.requests import checked_body, checked_query
from recordkit.api.routing import described
from recordkit.api.wire import meeting_json, page_window, paging, recording_json
from recordkit.clock import utcnow
from recordkit.meetings.service import get_meeting
from recordkit.recording import config as rconfig
from recordkit.recording.service import Recordings
from recordkit.schema import Bool, QueryParam, Str
from recordkit.storage.config import check_required

router = APIRouter(tags=["recordings"])

LIST_QUERY = (
    QueryParam("meeting_id", Str(format="uuid")),
    *listing.PAGING,
    QueryParam("status", Str(enum=rconfig.STATUSES), many=True),
    QueryParam("expired", Bool()),
    listing.SEARCH,
    listing.START_TIME,
    listing.END_TIME,
    QueryParam("sort_by", Str(enum=("invokedTime",))),
    listing.SORT_ORDER,
)


def _recordings(request: Request) -> Recordings:
    return request.app.state.services.recordings


@router.post(
    "/{app_id}/recordings",
    summary="Start recording a meeting",
    responses={200: {"model": docs.Envelope[docs.RecordingModel]}},
    openapi_extra=described(body=rconfig.START_BODY, errors=(400, 401, 403, 404, 409, 413, 503)),
)
async def start_recording(request: Request, account_id: str, app_id: str) -> Response:
    caller, app = await authorize(request, account_id, app_id, participant_allowed=True)
    body = await checked_body(request, rconfig.START_BODY)
    if body.get("storage_config"):
        check_required(body["storage_config"])
    rconfig.check_url_unsupported(body)
    recordings = _recordings(request)
    meeting = await get_meeting(recordings.db, app.id, body["meeting_id"])
    check_own_meeting(caller, meeting.id)
    check_participant_start(caller, body)
    plan = recordings.plan(body, meeting)
    recording = await recordings.start_composite(app.id, meeting, plan, caller)
    return ok(recording_json(recording, utcnow()))


@router.get(
    "/{app_id}/recordings",
    summary="Fetch all recordings for an App",
    responses={200: {"model": docs.PagedEnvelope[list[docs.RecordingListItem]]}},
    openapi_extra=described(query=LIST_QUERY),
)
async def list_recordings(request: Request, account_id: str, app_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    query = checked_query(request, LIST_QUERY)
    now = utcnow()
    rows, total = await _recordings(request).list(app.id, query, now)
    items = [{**recording_json(recording, now), "meeting": meeting_json(meeting)} for recording, meeting in rows]
    page_no, per_page = page_window(query)
    return ok(items, paging=paging(page_no, per_page, total, len(items)))


@router.get(
    "/{app_id}/recordings/active-recording/{meeting_id}",
    summary="Fetch active recording",
    responses={200: {"model": docs.Envelope[docs.RecordingModel]}},
    openapi_extra=described(),
)
async def active_recording(request: Request, account_id: str, app_id: str, meeting_id: str) -> Response:
    caller, app = await authorize(request, account_id, app_id, participant_allowed=True)
    recordings = _recordings(request)
    meeting = await get_meeting(recordings.db, app.id, meeting_id)
    check_own_meeting(caller, meeting.id)
    recording = await recordings.active_recording(meeting.id)
    if recording is None:
        raise ApiError(404, f"No active recording found for meeting_id {meeting_id}")
    return ok(recording_json(recording, utcnow()))


@router.post(
    "/{app_id}/recordings/track",
    summary="Start recording audio and video tracks",
    responses={200: {"model": docs.Envelope[docs.TrackStarted]}},
    openapi_extra=described(body=rconfig.TRACK_BODY, errors=(400, 401, 403, 404, 409, 413, 503)),
)
async def start_track_recording(request: Request, account_id: str, app_id: str) -> Response:
    caller, app = await authorize(request, account_id, app_id)
    body = await checked_body(request, rconfig.TRACK_BODY)
    recordings = _recordings(request)
    meeting = await get_meeting(recordings.db, app.id, body["meeting_id"])
    recording = await recordings.start_track(app.id, meeting, body, caller)
    return ok({"recording": recording_json(recording, utcnow())})


@router.put(
    "/{app_id}/recordings/{recording_id}",
    summary="Pause/Resume/Stop recording",
    responses={200: {"model": docs.Envelope[docs.RecordingModel]}},
    openapi_extra=described(body=rconfig.ACTION_BODY, errors=(400, 401, 403, 404, 409, 413)),
)
async def pause_resume_stop(request: Request, account_id: str, app_id: str, recording_id: str) -> Response:
    caller, app = await authorize(request, account_id, app_id, participant_allowed=True)
    recordings = _recordings(request)
    recording = await recordings.recording(app.id, recording_id)
    body = await checked_body(request, rconfig.ACTION_BODY)
    check_own_meeting(caller, recording.meeting_id)
    changed = await recordings.act(recording, body["action"], caller)
    return ok(recording_json(changed, utcnow()))


@router.get(
    "/{app_id}/recordings/{recording_id}",
    summary="Fetch details of a recording",
    responses={200: {"model": docs.Envelope[docs.RecordingModel]}},
    openapi_extra=described(),
)
async def get_recording(request: Request, account_id: str, app_id: str, recording_id: str) -> Response:
    caller, app = await authorize(request, account_id, app_id, participant_allowed=True)
    recording = await _recordings(request).recording(app.id, recording_id)
    check_own_meeting(caller, recording.meeting_id)
    return ok(recording_json(recording, utcnow()))
