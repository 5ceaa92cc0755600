"""Signalling for a meeting hosted on another media node (issue 14: a meeting's session lives on one media node).

Clients and recorders may call `/meet/{meeting_id}/…` on any API or media node of the fleet: a node that does not
host the meeting's room forwards the call, as it came, to the node that does (`placement.py`) and streams the
answer back (the slot and room streams included). Only signalling passes through here; the media itself flows
between the client and the hosting node, whose ICE candidates the answer carries.
"""

from __future__ import annotations

import logging
import re
import time

import httpx
from sqlalchemy import select
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from recordkit.api import errors
from recordkit.api.envelope import failure
from recordkit.db.engine import Database
from recordkit.db.models import Meeting
from recordkit.meetings.media.placement import MediaPlacement, NoMediaNode, Placed
from recordkit.meetings.media.plane import MediaPlane

log = logging.getLogger(__name__)

MEET_PATH = re.compile(r"/meet/([0-9A-Fa-f-]{36})/")
# What a client's call carries that the hosting node needs; everything else (cookies, hop-by-hop) stays here.
FORWARDED_REQUEST_HEADERS = ("authorization", "content-type", "accept", "last-event-id")
FORWARDED_RESPONSE_HEADERS = ("content-type", "cache-control", "x-accel-buffering", "retry-after")
# Where a meeting is hosted changes only when its node goes silent: a node asked many times (slot polls)
# asks the database at most this often per meeting.
PLACEMENT_CACHED_S = 2.0
PLACEMENTS_CACHED = 10_000


class MeetForwarding:
    """ASGI middleware: `/meet/{meeting_id}/…` goes to the meeting's media node unless that is this process."""

    def __init__(self, app: ASGIApp, forwarder: MeetForwarder) -> None:
        self.app = app
        self.forwarder = forwarder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = MEET_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        await self.forwarder.route(match[1].lower(), scope, receive, send, self.app)


class MeetForwarder:
    """Sends signalling calls on to the node hosting their meeting; one per process (its HTTP client)."""

    def __init__(self, db: Database, placement: MediaPlacement, plane: MediaPlane | None) -> None:
        self.db = db
        self.placement = placement
        self.plane = plane
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None))
        self._cached: dict[str, tuple[Placed, float]] = {}

    async def route(self, meeting_id: str, scope: Scope, receive: Receive, send: Send, here: ASGIApp) -> None:
        if self.plane is not None and meeting_id in self.plane.rooms:
            await here(scope, receive, send)
            return
        try:
            placed = await self._where(meeting_id)
        except NoMediaNode as error:
            await failure(errors.ApiError(503, str(error)))(scope, receive, send)
            return
        if placed is None or placed.node_id == self.placement.me:
            await here(scope, receive, send)  # an unknown meeting: the routes (or their absence) answer
            return
        await (await self._forward(Request(scope, receive), meeting_id, placed))(scope, receive, send)

    async def _where(self, meeting_id: str) -> Placed | None:
        """The node hosting the meeting, placing it if none does; None for a meeting that does not exist (nothing
        is placed for ids nobody created)."""
        cached = self._cached.get(meeting_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self.db.read() as session:
            if await session.scalar(select(Meeting.id).where(Meeting.id == meeting_id)) is None:
                return None
        placed = await self.placement.place(meeting_id)
        if len(self._cached) >= PLACEMENTS_CACHED:
            self._cached.clear()
        self._cached[meeting_id] = (placed, time.monotonic() + PLACEMENT_CACHED_S)
        return placed

    async def _forward(self, request: Request, meeting_id: str, placed: Placed) -> Response:
        headers = {name: value for name, value in request.headers.items() if name in FORWARDED_REQUEST_HEADERS}
        upstream = self.client.build_request(
            request.method,
            placed.url + request.url.path,
            params=request.query_params,
            headers=headers,
            content=await request.body(),
        )
        try:
            response = await self.client.send(upstream, stream=True)
        except httpx.HTTPError as error:
            log.warning("media node %s did not answer a signalling call: %s", placed.node_id, type(error).__name__)
            self._cached.pop(meeting_id, None)  # ask the database again: another node may host it now
            return failure(errors.ApiError(503, "The meeting's media node is not answering, try again later"))
        kept = {name: value for name, value in response.headers.items() if name in FORWARDED_RESPONSE_HEADERS}
        return StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            headers=kept,
            background=BackgroundTask(response.aclose),
        )

    async def close(self) -> None:
        await self.client.aclose()
