"""The kinds of refusal the domain raises, in one place; `api/errors.py` gives each its HTTP answer.

Domain code says what is wrong and of which kind, with the exact text the caller is shown; which status,
envelope and headers that becomes is the API's business alone.
"""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses. Raise one of its kinds below, never this class itself."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """What the request names does not exist, or not in the caller's app."""


class Conflict(DomainError):
    """The current state forbids the request, so repeating it unchanged cannot succeed."""


class Unavailable(DomainError):
    """This machine cannot take the request now (a resource runs short); the same request may succeed later."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Invalid(DomainError):
    """The request breaks a rule of the domain that no schema can check alone; `message` is the detail."""


class UnknownId(NotFound):
    """No row of this kind has this id."""

    def __init__(self, thing: str, ident: str) -> None:
        super().__init__(f"No {thing} found with id {ident}")
