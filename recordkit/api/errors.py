"""Every error the API answers with, in one place (recordings.md §13)."""

from __future__ import annotations


class ApiError(Exception):
    """An answer in the RealtimeKit error envelope with its HTTP status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def wrong_account(account_id: str) -> ApiError:
    return ApiError(403, f"Token does not grant access to account {account_id}")


def participant_forbidden() -> ApiError:
    return ApiError(403, "Participant is not allowed to perform this action")


def not_found(thing: str, ident: str) -> ApiError:
    return ApiError(404, f"No {thing} found with id {ident}")


def no_active_session(meeting_id: str) -> ApiError:
    return ApiError(404, f"No active session found for meeting_id {meeting_id}")


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"BAD_REQUEST: {detail}")


def conflict(message: str) -> ApiError:
    return ApiError(409, message, {"x-should-retry": "false"})


def body_too_large() -> ApiError:
    return ApiError(413, "Request body too large")


NO_ROUTE = ApiError(404, "No route for the URI")
METHOD_NOT_ALLOWED = ApiError(405, "Method not allowed")
INTERNAL = ApiError(500, "Internal server error")
