"""Every error the API answers with, in one place (recordings.md §13), and the answer for each kind of
refusal the domain raises (`recordkit.errors`)."""

from __future__ import annotations

from recordkit.errors import Conflict, DomainError, Invalid, NotFound, Unavailable


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


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"BAD_REQUEST: {detail}")


def conflict(message: str) -> ApiError:
    return ApiError(409, message, {"x-should-retry": "false"})


def from_domain(error: DomainError) -> ApiError:
    """The answer for a refusal of the domain: its kind picks the status, its message is the text."""
    match error:
        case NotFound():
            return ApiError(404, error.message)
        case Conflict():
            return conflict(error.message)
        case Invalid():
            return bad_request(error.message)
        case Unavailable():
            return ApiError(503, error.message, {"retry-after": str(error.retry_after_s)})
    raise TypeError(f"{type(error).__name__} is no kind of DomainError the API knows")


def body_too_large() -> ApiError:
    return ApiError(413, "Request body too large")


NO_ROUTE = ApiError(404, "No route for the URI")
METHOD_NOT_ALLOWED = ApiError(405, "Method not allowed")
INTERNAL = ApiError(500, "Internal server error")
