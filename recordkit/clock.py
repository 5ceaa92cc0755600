"""Time as the wire sees it: naive UTC datetimes inside, ISO 8601 with milliseconds and `Z` outside."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current instant as a naive UTC datetime, truncated to milliseconds like every stored time."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def to_wire(moment: datetime | None) -> str | None:
    """Format a stored time as `2026-03-02T10:00:02.412Z`; None stays None."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso8601(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (`Z`, an offset or no zone meaning UTC) into naive UTC.

    Raises ValueError when the text is not such a timestamp.
    """
    candidate = text.strip()
    if not candidate or candidate[0] in "+-" or len(candidate) < 10:
        raise ValueError(text)
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    moment = datetime.fromisoformat(candidate)
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(text) from None
    return moment


def unix_ms(moment: datetime) -> int:
    """Unix milliseconds of a naive UTC datetime."""
    return round(moment.replace(tzinfo=UTC).timestamp() * 1000)
