"""The session timing rules (meetings.md §6.1) as pure functions."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from recordkit.db.models import Meeting, MeetingSession, SessionPeer
from recordkit.meetings.sessions import idle_deadline, minutes_between, peer_minutes

T0 = datetime(2026, 3, 2, 10, 0, 0)


def live(live_participants: int, emptied_at: datetime | None, status: str = "LIVE") -> MeetingSession:
    return MeetingSession(status=status, live_participants=live_participants, emptied_at=emptied_at)


@pytest.mark.parametrize(
    ("session", "keep_alive_s", "deadline"),
    [
        (live(1, None), 60, None),
        (live(2, T0), 60, None),
        (live(0, T0), 60, T0 + timedelta(seconds=60)),
        (live(0, T0), 0, T0),
        (live(0, T0), 0.5, T0 + timedelta(milliseconds=500)),
        (live(0, T0), 600, T0 + timedelta(minutes=10)),
        (live(0, T0, status="ENDED"), 60, None),
        (live(0, None), 60, None),
    ],
)
def test_an_emptied_session_ends_its_keep_alive_later(
    session: MeetingSession, keep_alive_s: float, deadline: datetime | None
) -> None:
    assert idle_deadline(session, Meeting(session_keep_alive_time_in_secs=keep_alive_s)) == deadline


def test_minutes_are_fractional() -> None:
    assert minutes_between(T0, T0 + timedelta(seconds=90)) == 1.5
    assert minutes_between(T0, T0 + timedelta(milliseconds=600)) == pytest.approx(0.01)


def test_a_connected_peer_counts_up_to_now_and_a_gone_one_to_its_leaving() -> None:
    connected = SessionPeer(joined_at=T0, left_at=None)
    gone = SessionPeer(joined_at=T0, left_at=T0 + timedelta(minutes=3))
    assert peer_minutes(connected, T0 + timedelta(minutes=7)) == 7
    assert peer_minutes(gone, T0 + timedelta(minutes=7)) == 3
