"""Who is calling (recordings.md §2): the operator's API token, a participant token, or (on the join
interface only) a recorder token."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request

from recordkit.api import errors
from recordkit.db.models import App, Meeting, Participant, Preset
from recordkit.errors import UnknownId
from recordkit.meetings.callers import Caller
from recordkit.meetings.service import get_meeting
from recordkit.meetings.tokens import ParticipantTokens, RecorderClaims


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def is_api_token(token: str, expected: str) -> bool:
    return hmac.compare_digest(token.encode(), expected.encode())


def token_verifies(token: str, api_token: str, tokens: ParticipantTokens) -> bool:
    """Whether `token` is the API token or an unexpired participant or recorder token we signed. Without
    the database: a deleted participant's token still verifies here, and `authorize` refuses it."""
    return is_api_token(token, api_token) or tokens.read(token) is not None or tokens.read_recorder(token) is not None


async def authorize(
    request: Request,
    account_id: str,
    app_id: str | None,
    participant_allowed: bool = False,
) -> tuple[Caller, App | None]:
    """Run checks 1–3 of §2.3 and return the caller and the app named in the path.

    `participant_allowed` says whether a participant whose preset may record can use this route;
    such a caller is limited to their own meeting by the route itself (check 7).
    """
    services = request.app.state.services
    token = bearer_token(request)
    if token is None:
        raise errors.unauthorized()
    if is_api_token(token, services.settings.credentials.api_token):
        if not hmac.compare_digest(account_id.encode(), services.settings.credentials.account_id.encode()):
            raise errors.wrong_account(account_id)
        return Caller(), await _app(services, account_id, app_id)
    claims = services.tokens.read(token)
    if claims is None:
        raise errors.unauthorized()
    async with services.db.read() as session:
        participant = await session.get(Participant, claims.participant_id)
        if participant is None or participant.app_id != claims.app_id:
            raise errors.unauthorized()
        if claims.account_id != account_id or claims.app_id != app_id or not participant_allowed:
            raise errors.participant_forbidden()
        preset = await session.get(Preset, participant.preset_id)
        if preset is None or not preset.permissions.get("can_record"):
            raise errors.participant_forbidden()
    return Caller(participant=participant), await _app(services, account_id, app_id)


async def _app(services: Any, account_id: str, app_id: str | None) -> App | None:
    if app_id is None:
        return None
    app = await services.apps.find(account_id, app_id)
    if app is None:
        raise UnknownId("app", app_id)
    return app


def check_own_meeting(caller: Caller, meeting_id: str) -> None:
    """Check 7 of §2.3: a participant acts on their own meeting only."""
    if caller.participant is not None and caller.participant.meeting_id != meeting_id:
        raise errors.participant_forbidden()


def check_participant_start(caller: Caller, body: dict[str, Any]) -> None:
    """§2.2: a participant's start records with the meeting's settings, so it may name the meeting and
    nothing else; otherwise a participant could choose where the server sends data, what it fetches and
    how much it spends. `body` is the validated body: unknown keys and nulls meaning "not given" are gone
    (§4.2), aliases are under their canonical names."""
    if caller.participant is not None and body.keys() - {"meeting_id"}:
        raise errors.participant_forbidden()


def participant_token(request: Request) -> str | None:
    """A participant token, from `Authorization: Bearer` or `?authToken=` (meetings.md §8)."""
    return bearer_token(request) or request.query_params.get("authToken") or None


async def authorize_participant(request: Request, meeting_id: str) -> tuple[Participant, Meeting]:
    """The join interface's checks (meetings.md §8, in the order of recordings.md §2.3): 401 for a bad,
    expired or revoked token, 403 for an API token or a recorder token, 404 for a meeting unknown in the
    token's app. Whether the meeting is the participant's own is left to the caller (its place in the
    order varies)."""
    caller, meeting = await authorize_joiner(request, meeting_id)
    if isinstance(caller, RecorderClaims):
        raise errors.participant_forbidden()
    return caller, meeting


async def authorize_joiner(request: Request, meeting_id: str) -> tuple[Participant | RecorderClaims, Meeting]:
    """`authorize_participant` for the routes a recorder uses too: a recorder token is a caller here.
    It names no participant row, so nothing revokes it but its expiry."""
    services = request.app.state.services
    token = participant_token(request)
    if token is None:
        raise errors.unauthorized()
    if is_api_token(token, services.settings.credentials.api_token):
        raise errors.participant_forbidden()
    recorder = services.tokens.read_recorder(token)
    if recorder is not None:
        return recorder, await get_meeting(services.db, recorder.app_id, meeting_id)
    claims = services.tokens.read(token)
    if claims is None:
        raise errors.unauthorized()
    async with services.db.read() as session:
        participant = await session.get(Participant, claims.participant_id)
    # Deleting a participant revokes their tokens: a token without its participant is not valid.
    if participant is None or participant.app_id != claims.app_id:
        raise errors.unauthorized()
    return participant, await get_meeting(services.db, claims.app_id, meeting_id)
