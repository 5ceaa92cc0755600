"""Routes: meetings (meetings.md §4)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from recordkit.api import docs
from recordkit.api.auth import authorize
from recordkit.api.envelope import ok
from recordkit.api.listing import END_TIME, PAGING, SEARCH, START_TIME
from recordkit.api.requests import checked_body, checked_query
from recordkit.api.routing import described
from recordkit.api.wire import meeting_json, page_window, paging
from recordkit.meetings import service
from recordkit.meetings.service import CREATE_BODY, PATCH_BODY, PUT_BODY
from recordkit.schema import QueryParam, Str, query_datetime

router = APIRouter(tags=["meetings"])

LIST_QUERY = (*PAGING, SEARCH, START_TIME, END_TIME, QueryParam("status", Str(enum=service.STATUSES)))
WRITE_ERRORS = (400, 401, 403, 404, 413)


@router.post(
    "/{app_id}/meetings",
    summary="Create a meeting",
    status_code=201,
    responses={201: {"model": docs.Envelope[docs.MeetingModel]}},
    openapi_extra=described(body=CREATE_BODY, errors=WRITE_ERRORS),
)
async def create_meeting(request: Request, account_id: str, app_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    body = await checked_body(request, CREATE_BODY)
    services = request.app.state.services
    meeting = await service.create_meeting(
        services.db, app.id, body, secrets=services.secrets, server_defaults=services.settings.server_recording_defaults
    )
    return ok(meeting_json(meeting), status=201)


@router.get(
    "/{app_id}/meetings",
    summary="Fetch all meetings for an App",
    responses={200: {"model": docs.PagedEnvelope[list[docs.MeetingModel]]}},
    openapi_extra=described(query=LIST_QUERY),
)
async def list_meetings(request: Request, account_id: str, app_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    query = checked_query(request, LIST_QUERY)
    page_no, per_page = page_window(query)
    found, total = await service.list_meetings(
        request.app.state.services.db,
        app.id,
        search=query.get("search"),
        start_time=query_datetime(query.get("start_time")),
        end_time=query_datetime(query.get("end_time")),
        status=query.get("status"),
        page_no=page_no,
        per_page=per_page,
    )
    return ok([meeting_json(m) for m in found], paging=paging(page_no, per_page, total, len(found)))


@router.get(
    "/{app_id}/meetings/{meeting_id}",
    summary="Fetch a meeting for an App",
    responses={200: {"model": docs.Envelope[docs.MeetingModel]}},
    openapi_extra=described(errors=(401, 403, 404)),
)
async def get_meeting(request: Request, account_id: str, app_id: str, meeting_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    meeting = await service.get_meeting(request.app.state.services.db, app.id, meeting_id)
    return ok(meeting_json(meeting))


@router.patch(
    "/{app_id}/meetings/{meeting_id}",
    summary="Update a meeting",
    responses={200: {"model": docs.Envelope[docs.MeetingModel]}},
    openapi_extra=described(body=PATCH_BODY, errors=WRITE_ERRORS),
)
async def update_meeting(request: Request, account_id: str, app_id: str, meeting_id: str) -> Response:
    return await _write(request, account_id, app_id, meeting_id, replace=False)


@router.put(
    "/{app_id}/meetings/{meeting_id}",
    summary="Replace a meeting",
    responses={200: {"model": docs.Envelope[docs.MeetingModel]}},
    openapi_extra=described(body=PUT_BODY, errors=WRITE_ERRORS),
)
async def replace_meeting(request: Request, account_id: str, app_id: str, meeting_id: str) -> Response:
    return await _write(request, account_id, app_id, meeting_id, replace=True)


async def _write(request: Request, account_id: str, app_id: str, meeting_id: str, *, replace: bool) -> Response:
    _, app = await authorize(request, account_id, app_id)
    services = request.app.state.services
    meeting = await service.get_meeting(services.db, app.id, meeting_id)
    body = await checked_body(request, PUT_BODY if replace else PATCH_BODY)
    changed = await service.update_meeting(
        services.db,
        app.id,
        meeting.id,
        body,
        replace=replace,
        secrets=services.secrets,
        server_defaults=services.settings.server_recording_defaults,
    )
    return ok(meeting_json(changed))
