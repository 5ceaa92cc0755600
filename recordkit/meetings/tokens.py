"""Tokens signed by recordkit, opaque to clients: participant tokens (meetings.md §5) and recorder tokens.

Both are HS256 JWTs under the server's one key. A recorder token (`"kind": "recorder"`) lets a recorder
on another process join a meeting as a hidden peer; it carries no `participantId`, and a participant
token carries no `kind`, so neither reader accepts the other's token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

from recordkit.clock import utcnow

TOKEN_LIFETIME = timedelta(days=100)
# Only a join needs the token (a recorder that reconnects is given a fresh one), and it cannot be
# revoked: keep it short.
RECORDER_TOKEN_LIFETIME = timedelta(days=1)
RECORDER_KIND = "recorder"


@dataclass(frozen=True)
class ParticipantClaims:
    account_id: str
    app_id: str
    meeting_id: str
    participant_id: str


@dataclass(frozen=True)
class RecorderClaims:
    account_id: str
    app_id: str
    meeting_id: str
    recording_id: str


class ParticipantTokens:
    """Issues and checks participant and recorder tokens with the server's key."""

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
        """The claims of a valid, unexpired participant token, or None for anything else."""
        payload = self._decode(token)
        if payload is None or "kind" in payload:
            return None
        try:
            return ParticipantClaims(
                account_id=str(payload["accountId"]),
                app_id=str(payload["appId"]),
                meeting_id=str(payload["meetingId"]),
                participant_id=str(payload["participantId"]),
            )
        except KeyError:
            return None

    def issue_recorder(self, account_id: str, app_id: str, meeting_id: str, recording_id: str) -> str:
        """A token with which the recorder of `recording_id` joins `meeting_id` as a hidden peer."""
        issued = utcnow()
        payload = {
            "kind": RECORDER_KIND,
            "accountId": account_id,
            "appId": app_id,
            "meetingId": meeting_id,
            "recordingId": recording_id,
            "iat": issued,
            "exp": issued + RECORDER_TOKEN_LIFETIME,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(payload, self._key, algorithm="HS256")

    def read_recorder(self, token: str) -> RecorderClaims | None:
        """The claims of a valid, unexpired recorder token, or None for anything else."""
        payload = self._decode(token)
        if payload is None or payload.get("kind") != RECORDER_KIND or "participantId" in payload:
            return None
        try:
            return RecorderClaims(
                account_id=str(payload["accountId"]),
                app_id=str(payload["appId"]),
                meeting_id=str(payload["meetingId"]),
                recording_id=str(payload["recordingId"]),
            )
        except KeyError:
            return None

    def _decode(self, token: str) -> dict[str, Any] | None:
        try:
            payload: dict[str, Any] = jwt.decode(token, self._key, algorithms=["HS256"], options={"require": ["exp"]})
        except jwt.PyJWTError:
            return None
        return payload
