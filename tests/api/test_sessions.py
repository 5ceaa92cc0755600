"""Sessions (meetings.md §6): the start/end rules driven directly, and the routes that show them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.api.errors import from_domain
from recordkit.clock import to_wire, utcnow
from recordkit.db.models import MeetingSession, SessionPeer
from recordkit.errors import DomainError
from recordkit.meetings import sessions
from recordkit.meetings.sessions import SessionEvents, end_session, expire_idle_sessions, peer_joined, peer_left
from tests.helpers import BARE, Api, assert_error

FORBIDDEN = "Participant is not allowed to perform this action"


@dataclass
class Room:
    """A meeting with participants, for driving sessions by hand."""

    app_id: str
    meeting_id: str
    people: list[str]


async def room(api: Api, keep_alive_s: float = 60, people: int = 2, title: str | None = "Standup") -> Room:
    app_id = await api.new_app("Sessions")
    meeting = await api.new_meeting(app_id, title=title, session_keep_alive_time_in_secs=keep_alive_s)
    ids = [(await api.new_participant(app_id, meeting["id"], name=f"P{n}"))["id"] for n in range(people)]
    return Room(app_id, meeting["id"], ids)


async def stored(api: Api, session_id: str) -> MeetingSession:
    async with api.services.db.read() as session:
        found = await session.get(MeetingSession, session_id)
    assert found is not None
    return found


def past(minutes: float = 0) -> datetime:
    return START + timedelta(minutes=minutes)


START = utcnow() - timedelta(hours=2)


async def test_the_first_peer_starts_a_live_session_that_others_join(api: Api) -> None:
    r = await room(api)
    first = await peer_joined(api.services.db, r.meeting_id, r.people[0], now=past(0))
    second = await peer_joined(api.services.db, r.meeting_id, r.people[1], now=past(1))
    assert first.session_id == second.session_id
    live = await stored(api, first.session_id)
    assert (live.status, live.live_participants, live.max_concurrent_participants) == ("LIVE", 2, 2)
    assert live.started_at == past(0) and live.ended_at is None and live.app_id == r.app_id


async def test_simultaneous_joins_share_one_session(api: Api) -> None:
    r = await room(api, people=6)
    db = api.services.db
    peers = await asyncio.gather(*(peer_joined(db, r.meeting_id, person) for person in r.people))
    assert len({peer.session_id for peer in peers}) == 1
    live = await stored(api, peers[0].session_id)
    assert (live.live_participants, live.max_concurrent_participants) == (6, 6)
    await asyncio.gather(*(peer_left(db, peer.id) for peer in peers))
    emptied = await stored(api, peers[0].session_id)
    assert emptied.live_participants == 0 and emptied.emptied_at is not None


async def test_a_rejoin_within_the_keep_alive_continues_the_session(api: Api) -> None:
    r = await room(api, keep_alive_s=60)
    db = api.services.db
    peer = await peer_joined(db, r.meeting_id, r.people[0], now=past(0))
    await peer_left(db, peer.id, now=past(1))
    emptied = await stored(api, peer.session_id)
    assert (emptied.status, emptied.live_participants, emptied.emptied_at) == ("LIVE", 0, past(1))
    assert await expire_idle_sessions(db, now=past(1) + timedelta(seconds=59)) == []
    again = await peer_joined(db, r.meeting_id, r.people[1], now=past(1.5))
    assert again.session_id == peer.session_id
    continued = await stored(api, peer.session_id)
    assert (continued.live_participants, continued.emptied_at, continued.max_concurrent_participants) == (1, None, 1)


async def test_a_session_ends_its_keep_alive_after_the_last_peer_leaves(api: Api) -> None:
    r = await room(api, keep_alive_s=30)
    db = api.services.db
    peer = await peer_joined(db, r.meeting_id, r.people[0], now=past(0))
    await peer_left(db, peer.id, now=past(2))
    ended = await expire_idle_sessions(db, now=past(3))
    assert [s.id for s in ended if s.meeting_id == r.meeting_id] == [peer.session_id]
    gone = await stored(api, peer.session_id)
    assert gone.status == "ENDED" and gone.ended_at == past(2) + timedelta(seconds=30)
    later = await peer_joined(db, r.meeting_id, r.people[0], now=past(4))
    assert later.session_id != peer.session_id


async def test_a_keep_alive_of_zero_ends_the_session_the_moment_it_empties(api: Api) -> None:
    r = await room(api, keep_alive_s=0)
    db = api.services.db
    one = await peer_joined(db, r.meeting_id, r.people[0], now=past(0))
    two = await peer_joined(db, r.meeting_id, r.people[1], now=past(1))
    await peer_left(db, one.id, now=past(2))
    assert (await stored(api, one.session_id)).status == "LIVE"
    await peer_left(db, two.id, now=past(3))
    ended = await stored(api, one.session_id)
    assert ended.status == "ENDED" and ended.ended_at == past(3)


async def test_a_join_after_the_deadline_starts_a_new_session_without_waiting_for_a_sweep(api: Api) -> None:
    r = await room(api, keep_alive_s=10)
    db = api.services.db
    peer = await peer_joined(db, r.meeting_id, r.people[0], now=past(0))
    await peer_left(db, peer.id, now=past(1))
    fresh = await peer_joined(db, r.meeting_id, r.people[0], now=past(5))
    assert fresh.session_id != peer.session_id
    old = await stored(api, peer.session_id)
    assert old.status == "ENDED" and old.ended_at == past(1) + timedelta(seconds=10)
    new = await stored(api, fresh.session_id)
    assert new.status == "LIVE" and new.started_at == past(5)


async def test_minutes_consumed_sums_the_time_of_every_peer(api: Api) -> None:
    r = await room(api, keep_alive_s=0)
    db = api.services.db
    a = await peer_joined(db, r.meeting_id, r.people[0], now=past(0))
    b = await peer_joined(db, r.meeting_id, r.people[1], now=past(1))
    await peer_left(db, a.id, now=past(2))
    assert (await stored(api, a.session_id)).minutes_consumed == pytest.approx(2)
    await peer_left(db, b.id, now=past(4.5))
    done = await stored(api, a.session_id)
    assert done.minutes_consumed == pytest.approx(5.5) and done.max_concurrent_participants == 2


async def test_leaving_twice_keeps_the_first_left_at(api: Api) -> None:
    r = await room(api)
    db = api.services.db
    peer = await peer_joined(db, r.meeting_id, r.people[0], now=past(0))
    first = await peer_left(db, peer.id, now=past(1))
    second = await peer_left(db, peer.id, now=past(2))
    assert first.left_at == second.left_at == past(1)
    assert (await stored(api, peer.session_id)).minutes_consumed == pytest.approx(1)


async def test_joins_and_leaves_of_unknown_people_are_refused(api: Api) -> None:
    r = await room(api)
    other = await room(api)
    db = api.services.db
    with pytest.raises(DomainError) as stranger:
        await peer_joined(db, r.meeting_id, other.people[0])
    assert from_domain(stranger.value).status == 404
    with pytest.raises(DomainError) as nobody:
        await peer_left(db, "no-such-peer")
    assert nobody.value.message == "No peer found with id no-such-peer"


async def test_session_hooks_see_sessions_start_and_end(api: Api) -> None:
    r = await room(api, keep_alive_s=5)
    seen: list[tuple[str, str, str]] = []

    async def started(_tx: AsyncSession, session: MeetingSession) -> None:
        seen.append(("started", session.id, session.status))

    async def ended(_tx: AsyncSession, session: MeetingSession) -> None:
        seen.append(("ended", session.id, session.status))

    events = SessionEvents(started=started, ended=ended)
    db = api.services.db
    peer = await peer_joined(db, r.meeting_id, r.people[0], now=past(0), events=events)
    await peer_joined(db, r.meeting_id, r.people[1], now=past(0.5), events=events)
    await peer_left(db, peer.id, now=past(1), events=events)
    assert seen == [("started", peer.session_id, "LIVE")]
    result = await end_session(db, peer.session_id, now=past(2), events=events)
    assert result is not None and [p.participant_id for p in result.disconnected] == [r.people[1]]
    assert seen[-1] == ("ended", peer.session_id, "ENDED")
    assert await end_session(db, peer.session_id, events=events) is None
    assert len(seen) == 2


# -- routes -------------------------------------------------------------------------------------


async def test_active_session_shows_the_live_session(api: Api) -> None:
    r = await room(api)
    peer = await peer_joined(api.services.db, r.meeting_id, r.people[0], now=past(0))
    data = await api.ok("GET", f"/{r.app_id}/meetings/{r.meeting_id}/active-session")
    assert data == {
        "id": peer.session_id,
        "associated_id": r.meeting_id,
        "meeting_display_name": "Standup",
        "type": "meeting",
        "status": "LIVE",
        "live_participants": 1,
        "max_concurrent_participants": 1,
        "minutes_consumed": 0,
        "organization_id": r.app_id,
        "started_at": to_wire(past(0)),
        "ended_at": None,
        "created_at": to_wire(past(0)),
        "updated_at": to_wire(past(0)),
    }
    assert await api.ok("GET", f"/{r.app_id}/sessions/{peer.session_id}") == data


async def test_active_session_is_404_when_nobody_is_in_the_meeting(api: Api) -> None:
    r = await room(api, title=None)
    response = await api.call("GET", f"/{r.app_id}/meetings/{r.meeting_id}/active-session")
    assert_error(response, 404, f"No active session found for meeting_id {r.meeting_id}")
    response = await api.call("GET", f"/{r.app_id}/meetings/ghost/active-session")
    assert_error(response, 404, "No meeting found with id ghost")


async def test_kick_all_disconnects_everyone_and_ends_the_session_now(api: Api) -> None:
    r = await room(api, people=3)
    db = api.services.db
    peers = [await peer_joined(db, r.meeting_id, person, now=past(n)) for n, person in enumerate(r.people)]
    await peer_left(db, peers[0].id, now=past(5))
    before = utcnow()
    response = await api.call("POST", f"/{r.app_id}/meetings/{r.meeting_id}/active-session/kick-all")
    assert response.status_code == 200
    assert response.json()["data"] == {"action": "kick-all", "kicked_participants_count": 2}
    session = await api.ok("GET", f"/{r.app_id}/sessions/{peers[0].session_id}")
    assert session["status"] == "ENDED" and session["live_participants"] == 0
    assert session["ended_at"] >= to_wire(before)
    async with db.read() as tx:
        left = [(await tx.get(SessionPeer, p.id)).left_at for p in peers]
    assert left[0] == past(5) and left[1] == left[2] and to_wire(left[1]) == session["ended_at"]
    response = await api.call("GET", f"/{r.app_id}/meetings/{r.meeting_id}/active-session")
    assert_error(response, 404, f"No active session found for meeting_id {r.meeting_id}")
    response = await api.call("POST", f"/{r.app_id}/meetings/{r.meeting_id}/active-session/kick-all")
    assert_error(response, 404, f"No active session found for meeting_id {r.meeting_id}")


async def test_a_kick_all_session_that_had_emptied_reports_no_one_kicked(api: Api) -> None:
    r = await room(api, keep_alive_s=600)
    peer = await peer_joined(api.services.db, r.meeting_id, r.people[0], now=utcnow())
    await peer_left(api.services.db, peer.id)
    data = await api.ok("POST", f"/{r.app_id}/meetings/{r.meeting_id}/active-session/kick-all", base=BARE)
    assert data == {"action": "kick-all", "kicked_participants_count": 0}
    assert (await stored(api, peer.session_id)).status == "ENDED"


async def test_unknown_or_foreign_sessions_are_404(api: Api) -> None:
    r = await room(api)
    other = await room(api)
    peer = await peer_joined(api.services.db, other.meeting_id, other.people[0])
    for route in (f"/{r.app_id}/sessions/{peer.session_id}", f"/{r.app_id}/sessions/{peer.session_id}/participants"):
        assert_error(await api.call("GET", route), 404, f"No session found with id {peer.session_id}")
    assert_error(await api.call("GET", f"/{r.app_id}/sessions/nope"), 404, "No session found with id nope")


@pytest.fixture(scope="module")
async def history(api: Api) -> dict[str, Any]:
    """An app with three sessions: two ended ones and a live one, on two meetings."""
    app_id = await api.new_app("History")
    alpha = (await api.new_meeting(app_id, title="Alpha Review", session_keep_alive_time_in_secs=0))["id"]
    untitled = (await api.new_meeting(app_id, session_keep_alive_time_in_secs=0))["id"]
    person = {m: (await api.new_participant(app_id, m))["id"] for m in (alpha, untitled)}
    db = api.services.db
    first = await peer_joined(db, alpha, person[alpha], now=past(0))
    await peer_left(db, first.id, now=past(5))
    second = await peer_joined(db, untitled, person[untitled], now=past(10))
    await peer_left(db, second.id, now=past(11))
    third = await peer_joined(db, alpha, person[alpha], now=past(20))
    return {
        "app_id": app_id,
        "alpha": alpha,
        "untitled": untitled,
        "s1": first.session_id,
        "s2": second.session_id,
        "s3": third.session_id,
    }


async def session_ids(api: Api, h: dict[str, Any], **params: Any) -> list[str]:
    data = await api.ok("GET", f"/{h['app_id']}/sessions", params=params)
    return [session["id"] for session in data["sessions"]]


async def test_sessions_list_newest_first_in_a_sessions_key(api: Api, history: dict[str, Any]) -> None:
    h = history
    response = await api.call("GET", f"/{h['app_id']}/sessions")
    body = response.json()
    assert [s["id"] for s in body["data"]["sessions"]] == [h["s3"], h["s2"], h["s1"]]
    assert body["paging"] == {"total_count": 3, "start_offset": 1, "end_offset": 3}
    by_id = {s["id"]: s for s in body["data"]["sessions"]}
    assert by_id[h["s2"]]["meeting_display_name"] == "" and by_id[h["s1"]]["meeting_display_name"] == "Alpha Review"
    assert by_id[h["s1"]]["minutes_consumed"] == 5 and by_id[h["s1"]]["ended_at"] == to_wire(past(5))
    paged = (await api.call("GET", f"/{h['app_id']}/sessions", params={"per_page": 2, "page_no": 2})).json()
    assert [s["id"] for s in paged["data"]["sessions"]] == [h["s1"]]
    assert paged["paging"] == {"total_count": 3, "start_offset": 3, "end_offset": 3}


async def test_sessions_list_filters_and_sorts(api: Api, history: dict[str, Any]) -> None:
    h = history
    assert await session_ids(api, h, sort_order="ASC") == [h["s1"], h["s2"], h["s3"]]
    assert await session_ids(api, h, sort_by="minutesConsumed") == [h["s1"], h["s2"], h["s3"]]
    assert await session_ids(api, h, sort_by="minutesConsumed", sort_order="ASC") == [h["s3"], h["s2"], h["s1"]]
    assert await session_ids(api, h, associated_id=h["alpha"].upper()) == [h["s3"], h["s1"]]
    assert await session_ids(api, h, status="LIVE") == [h["s3"]]
    assert await session_ids(api, h, status="ENDED") == [h["s2"], h["s1"]]
    assert await session_ids(api, h, search="alpha rev") == [h["s3"], h["s1"]]
    assert await session_ids(api, h, search=h["untitled"]) == [h["s2"]]
    assert await session_ids(api, h, search=h["s1"].upper()) == [h["s1"]]
    assert await session_ids(api, h, start_time=to_wire(past(10))) == [h["s3"], h["s2"]]
    assert await session_ids(api, h, end_time=to_wire(past(10))) == [h["s2"], h["s1"]]
    assert await session_ids(api, h, start_time=to_wire(past(11)), end_time=to_wire(past(19))) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("associated_id=abc", '"associated_id" must be a valid GUID'),
        ("status=live", '"status" must be one of [LIVE, ENDED]'),
        ("sort_by=joinedAt", '"sort_by" must be one of [createdAt, minutesConsumed]'),
        ("sort_order=down", '"sort_order" must be one of [ASC, DESC]'),
        ("start_time=soon", '"start_time" must be in ISO 8601 date format'),
        ("page_no=-1", '"page_no" must be greater than or equal to 0'),
        ("per_page=101", '"per_page" must be less than or equal to 100'),
    ],
)
async def test_sessions_list_query_rules(api: Api, history: dict[str, Any], query: str, message: str) -> None:
    response = await api.call("GET", f"/{history['app_id']}/sessions?{query}")
    assert_error(response, 400, f"BAD_REQUEST: {message}")


async def test_session_participants_are_one_entry_per_peer(api: Api) -> None:
    r = await room(api, people=3)
    db = api.services.db
    a = await peer_joined(db, r.meeting_id, r.people[0], now=past(0))
    b = await peer_joined(db, r.meeting_id, r.people[1], now=past(1))
    c = await peer_joined(db, r.meeting_id, r.people[2], now=past(2))
    await peer_left(db, a.id, now=past(10))
    await peer_left(db, c.id, now=past(3))
    again = await peer_joined(db, r.meeting_id, r.people[2], now=past(4))
    await peer_left(db, again.id, now=past(4.5))
    route = f"/{r.app_id}/sessions/{a.session_id}/participants"

    async def ids(**params: Any) -> list[str]:
        return [p["id"] for p in (await api.ok("GET", route, params=params))["participants"]]

    body = (await api.call("GET", route)).json()
    entries = body["data"]["participants"]
    assert [p["id"] for p in entries] == [a.id, b.id, c.id, again.id]
    assert body["paging"] == {"total_count": 4, "start_offset": 1, "end_offset": 4}
    assert entries[0] == {
        "id": a.id,
        "user_id": r.people[0],
        "custom_participant_id": "user-P0",
        "display_name": "P0",
        "preset_name": "group_call_host",
        "joined_at": to_wire(past(0)),
        "left_at": to_wire(past(10)),
        "duration": 10,
        "created_at": to_wire(past(0)),
        "updated_at": to_wire(past(10)),
    }
    connected = entries[1]
    assert connected["left_at"] is None and connected["duration"] > 110
    assert await ids(sort_by="duration", sort_order="DESC") == [b.id, a.id, c.id, again.id]
    assert await ids(sort_by="duration") == [again.id, c.id, a.id, b.id]
    assert await ids(sort_order="DESC") == [again.id, c.id, b.id, a.id]
    page = (await api.call("GET", route, params={"per_page": 3, "page_no": 2})).json()
    assert [p["id"] for p in page["data"]["participants"]] == [again.id]
    assert page["paging"] == {"total_count": 4, "start_offset": 4, "end_offset": 4}
    response = await api.call("GET", route, params={"sort_by": "createdAt"})
    assert_error(response, 400, 'BAD_REQUEST: "sort_by" must be one of [joinedAt, duration]')


async def test_session_participants_keep_their_names_after_the_participant_is_deleted(api: Api) -> None:
    r = await room(api, people=1)
    peer = await peer_joined(api.services.db, r.meeting_id, r.people[0], now=past(0))
    await api.ok("DELETE", f"/{r.app_id}/meetings/{r.meeting_id}/participants/{r.people[0]}")
    data = await api.ok("GET", f"/{r.app_id}/sessions/{peer.session_id}/participants")
    (entry,) = data["participants"]
    assert entry["display_name"] == "P0" and entry["user_id"] == r.people[0] and entry["left_at"] is not None


async def test_participant_tokens_are_refused_on_session_routes(api: Api) -> None:
    r = await room(api)
    token = (await api.new_participant(r.app_id, r.meeting_id))["token"]
    peer = await peer_joined(api.services.db, r.meeting_id, r.people[0])
    for method, route in [
        ("GET", f"/{r.app_id}/sessions"),
        ("GET", f"/{r.app_id}/sessions/{peer.session_id}"),
        ("GET", f"/{r.app_id}/sessions/{peer.session_id}/participants"),
        ("GET", f"/{r.app_id}/meetings/{r.meeting_id}/active-session"),
        ("POST", f"/{r.app_id}/meetings/{r.meeting_id}/active-session/kick-all"),
    ]:
        assert_error(await api.call(method, route, token=token), 403, FORBIDDEN)
        assert_error(await api.call(method, route, token=None), 401, "Unauthorized")
    assert (await stored(api, peer.session_id)).status == "LIVE"


async def test_live_session_helper_finds_only_live_sessions(api: Api) -> None:
    r = await room(api, keep_alive_s=0)
    db = api.services.db
    peer = await peer_joined(db, r.meeting_id, r.people[0], now=past(0))
    async with db.read() as tx:
        assert (await sessions.live_session(tx, r.meeting_id)).id == peer.session_id
    await peer_left(db, peer.id, now=past(1))
    async with db.read() as tx:
        assert await sessions.live_session(tx, r.meeting_id) is None
