"""The answer for each kind of refusal the domain raises (recordings.md §13)."""

from __future__ import annotations

import pytest

from recordkit.api.errors import from_domain
from recordkit.errors import Conflict, DomainError, Invalid, NotFound, UnknownId
from recordkit.meetings.service import MeetingInactive
from recordkit.meetings.sessions import NoActiveSession

M = "5f3a0c4e-2b1d-4e6f-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize(
    ("refusal", "status", "message", "headers"),
    [
        (UnknownId("recording", "r1"), 404, "No recording found with id r1", {}),
        (NoActiveSession(M), 404, f"No active session found for meeting_id {M}", {}),
        (NotFound("gone"), 404, "gone", {}),
        (MeetingInactive(M), 409, f"Meeting {M} is INACTIVE", {"x-should-retry": "false"}),
        (Conflict("busy"), 409, "busy", {"x-should-retry": "false"}),
        (Invalid('"storage_config" is required'), 400, 'BAD_REQUEST: "storage_config" is required', {}),
    ],
)
def test_each_refusal_is_answered_with_its_status_text_and_headers(
    refusal: DomainError, status: int, message: str, headers: dict[str, str]
) -> None:
    answer = from_domain(refusal)
    assert (answer.status, answer.message, answer.headers) == (status, message, headers)


def test_a_refusal_of_no_known_kind_is_a_bug_not_an_answer() -> None:
    with pytest.raises(TypeError):
        from_domain(DomainError("which kind?"))
