"""Routes: sessions of an app, and the active session of a meeting (meetings.md §6.3)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from recordkit.api import docs
from recordkit.api.auth import authorize
from recordkit.api.envelope import ok
from recordkit.api.listing import END_TIME, PAGING, SEARCH, SORT_ORDER, START_TIME
from recordkit.api.requests import checked_query
from recordkit.api.routing import described
from recordkit.api.wire import page_window, paging, session_json, session_peer_json
from recordkit.clock import utcnow
from recordkit.meetings import service, sessions
from recordkit.meetings.sessions import SessionEvents
from recordkit.schema import QueryParam, Str, query_datetime

router = APIRouter(tags=["sessions"])

LIST_QUERY = (
    QueryParam("associated_id", Str(format="uuid"), "Only sessions of this meeting."),
    QueryParam("status", Str(enum=(sessions.LIVE, sessions.ENDED))),
    START_TIME,
    END_TIME,
    SEARCH,
    QueryParam("sort_by", Str(enum=("createdAt", "minutesConsumed"))),
    SORT_ORDER,
    *PAGING,
)
PEERS_QUERY = (*PAGING, QueryParam("sort_by", Str(enum=("joinedAt", "duration"))), SORT_ORDER)


def session_events(request: Request) -> SessionEvents | None:
    """The session hooks app.py wires in (recordings stop when their session ends), if any."""
    return getattr(request.app.state.services, "session_events", None)


@router.get(
    "/{app_id}/sessions",
    summary="Fetch all sessions of an App",
    responses={200: {"model": docs.PagedEnvelope[docs.SessionList]}},
    openapi_extra=described(query=LIST_QUERY),
)
async def list_sessions(request: Request, account_id: str, app_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    query = checked_query(request, LIST_QUERY)
    page_no, per_page = page_window(query)
    found, total = await sessions.list_sessions(
        request.app.state.services.db,
        app.id,
        meeting_id=query.get("associated_id"),
        status=query.get("status"),
        start_time=query_datetime(query.get("start_time")),
        end_time=query_datetime(query.get("end_time")),
        search=query.get("search"),
        by_minutes=query.get("sort_by") == "minutesConsumed",
        descending=query.get("sort_order", "DESC") == "DESC",
        page_no=page_no,
        per_page=per_page,
    )
    items = [session_json(session, title) for session, title in found]
    return ok({"sessions": items}, paging=paging(page_no, per_page, total, len(items)))


@router.get(
    "/{app_id}/sessions/{session_id}",
    summary="Fetch details of a session",
    responses={200: {"model": docs.Envelope[docs.SessionModel]}},
    openapi_extra=described(errors=(401, 403, 404)),
)
async def get_session(request: Request, account_id: str, app_id: str, session_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    session, title = await sessions.get_session(request.app.state.services.db, app.id, session_id)
    return ok(session_json(session, title))


@router.get(
    "/{app_id}/sessions/{session_id}/participants",
    summary="Fetch participants of a session",
    responses={200: {"model": docs.PagedEnvelope[docs.SessionParticipantList]}},
    openapi_extra=described(query=PEERS_QUERY),
)
async def list_session_participants(request: Request, account_id: str, app_id: str, session_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    db = request.app.state.services.db
    session, _ = await sessions.get_session(db, app.id, session_id)
    query = checked_query(request, PEERS_QUERY)
    page_no, per_page = page_window(query)
    now = utcnow()
    found, total = await sessions.list_session_peers(
        db,
        session.id,
        by_duration=query.get("sort_by") == "duration",
        descending=query.get("sort_order", "ASC") == "DESC",
        now=now,
        page_no=page_no,
        per_page=per_page,
    )
    items = [session_peer_json(peer, now) for peer in found]
    return ok({"participants": items}, paging=paging(page_no, per_page, total, len(items)))


@router.get(
    "/{app_id}/meetings/{meeting_id}/active-session",
    summary="Fetch the active session of a meeting",
    responses={200: {"model": docs.Envelope[docs.SessionModel]}},
    openapi_extra=described(errors=(401, 403, 404)),
)
async def active_session(request: Request, account_id: str, app_id: str, meeting_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    db = request.app.state.services.db
    meeting = await service.get_meeting(db, app.id, meeting_id)
    return ok(session_json(await sessions.active_session(db, meeting), meeting.title))


@router.post(
    "/{app_id}/meetings/{meeting_id}/active-session/kick-all",
    summary="Kick all participants and end the active session",
    responses={200: {"model": docs.Envelope[docs.KickAll]}},
    openapi_extra=described(errors=(401, 403, 404)),
)
async def kick_all(request: Request, account_id: str, app_id: str, meeting_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    db = request.app.state.services.db
    meeting = await service.get_meeting(db, app.id, meeting_id)
    ended = await sessions.end_live_session(db, app.id, meeting.id, events=session_events(request))
    if ended is None:
        raise sessions.NoActiveSession(meeting.id)
    # The session and its peers' rows are closed; now drop the connections themselves.
    await request.app.state.services.media.disconnect_meeting(meeting.id)
    return ok({"action": "kick-all", "kicked_participants_count": len(ended.disconnected)})
