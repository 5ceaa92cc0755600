"""Participant tokens: JWTs signed by recordkit, opaque to clients (meetings.md §5)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt

from recordkit.clock import utcnow

TOKEN_LIFETIME = timedelta(days=100)


@dataclass(frozen=True)
class ParticipantClaims:
    account_id: str
    app_id: str
    meeting_id: str
    participant_id: str


class ParticipantTokens:
    """Issues and checks participant tokens with the server's key."""

    def __init__(self, key: str) -> None:
        self._key = key

    def issue(self, claims: ParticipantClaims) -> str:
        issued = utcnow()
        payload = {
            "accountId": claims.account_id,
            "appId": claims.app_id,
            "meetingId": claims.meeting_id,
            "participantId": claims.participant_id,
            "iat": issued,
            "exp": issued + TOKEN_LIFETIME,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(payload, self._key, algorithm="HS256")

    def read(self, token: str) -> ParticipantClaims | None:
        """The claims of a valid, unexpired token, or None for anything else."""
        try:
            payload = jwt.decode(token, self._key, algorithms=["HS256"], options={"require": ["exp"]})
            return ParticipantClaims(
                account_id=str(payload["accountId"]),
                app_id=str(payload["appId"]),
                meeting_id=str(payload["meetingId"]),
                participant_id=str(payload["participantId"]),
            )
        except (jwt.PyJWTError, KeyError):
            return None
