"""The browser join page, GET `/meet/{meeting_id}?authToken=...` (meetings.md §8).

The route only checks who is asking and hands out a static page; the page itself (plain HTML, CSS and
one JS module under `meetings/media/static/`) does the joining through the signalling routes.
Errors are a short HTML page with the status, because a person reads them, not a client.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from recordkit.api import errors
from recordkit.api.auth import authorize_participant
from recordkit.db.models import Meeting, Participant
from recordkit.errors import DomainError
from recordkit.meetings.service import MeetingInactive

STATIC_DIR = Path(__file__).resolve().parent.parent / "meetings" / "media" / "static"
STATIC_URL = "/static/meet"
PAGE = STATIC_DIR / "meet.html"

# The page URL carries the participant token, so nothing about it may be cached or leak to other sites.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}

router = APIRouter(tags=["join"])


def install(app: FastAPI) -> None:
    """Serve the join page and its static files (`access_log.py` keeps the token in its URL out of the log)."""
    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="meet-static")


@router.get("/meet/{meeting_id}", summary="The browser join page", response_class=HTMLResponse)
async def join_page(request: Request, meeting_id: str) -> Response:
    """The page for a participant of this meeting, or a short HTML error page (401/403/404/409)."""
    try:
        await authorize_join(request, meeting_id)
    except errors.ApiError as exc:
        return error_page(exc)
    except DomainError as exc:
        return error_page(errors.from_domain(exc))
    return FileResponse(PAGE, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


async def authorize_join(request: Request, meeting_id: str) -> tuple[Participant, Meeting]:
    """The checks of §8 in the order of recordings.md §2.3; raises the error of the first that fails:
    401/403/404 as for signalling, 403 token of another meeting, 409 meeting INACTIVE."""
    participant, meeting = await authorize_participant(request, meeting_id)
    if participant.meeting_id != meeting.id:
        raise errors.participant_forbidden()
    if meeting.status == "INACTIVE":
        raise MeetingInactive(meeting.id)
    return participant, meeting


def error_page(error: errors.ApiError) -> HTMLResponse:
    """A short human-readable page with the error's status."""
    message = html.escape(error.message)
    body = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{error.status} · recordkit</title></head>\n"
        f"<body><h1>Cannot join this meeting</h1>\n<p>{message} (HTTP {error.status})</p></body></html>\n"
    )
    return HTMLResponse(body, status_code=error.status, headers=PAGE_HEADERS)
