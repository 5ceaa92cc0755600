"""`recording_duration` (recordings.md §7.5): captured time with paused spans cut out."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from recordkit.db.models import Recording


def round_half_up(seconds: float) -> int:
    return int(Decimal(repr(seconds)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def recording_duration_s(recording: Recording, now: datetime) -> int:
    """Whole seconds captured: stopped (or now) − started − paused, 0 before capture began."""
    if recording.started_time is None:
        return 0
    end = recording.stopped_time or now
    paused_ms = recording.paused_total_ms or 0
    if recording.paused_at is not None and recording.stopped_time is None:
        paused_ms += (now - recording.paused_at).total_seconds() * 1000
    captured_s = (end - recording.started_time).total_seconds() - paused_ms / 1000
    return max(0, round_half_up(captured_s))
