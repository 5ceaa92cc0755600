"""Who is in the meeting (meetings.md §6, §8): joining on connect, leaving on /leave, removal through the
API, kick-all, and the peers that never connect or go silent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from recordkit.bot.client import JoinedPeer, join
from recordkit.config import MediaSettings
from recordkit.meetings.media.ice import ice_connections
from tests.helpers import assert_error
from tests.meetings.media.sdp import offer_sdp
from tests.support.media import CounterVideoTrack, Setup, ThreadServer, ToneTrack, serve_in_thread


async def closed_soon(peer: JoinedPeer, timeout_s: float = 5.0) -> bool:
    """Whether the server closed this client's connection within the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while peer.pc.connectionState not in ("closed", "failed"):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def eventually(check: object, timeout_s: float = 10.0) -> None:
    """Wait until `check()` is true."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_joins_and_leaves_are_recorded_and_the_last_leave_ends_the_session(
    served: ThreadServer, setup: Setup
) -> None:
    app_id, meeting_id = setup.meeting(session_keep_alive_time_in_secs=0)
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")

    async with join(served.base_url, meeting_id, ada["token"], audio=ToneTrack()) as a:
        async with join(served.base_url, meeting_id, bob["token"], receive_audio=1) as b:
            await b.wait_for_remote("audio")
            (live,) = setup.sessions(app_id, meeting_id)
            assert (live["status"], live["live_participants"]) == ("LIVE", 2)
            bob_left_at = await b.leave()
        assert await b.leave() is None  # leaving twice is harmless
        ada_left_at = await a.leave()

    rows = {row["id"]: row for row in setup.session_peers(app_id, meeting_id)}
    assert set(rows) == {a.peer_id, b.peer_id}
    assert rows[b.peer_id]["left_at"] == bob_left_at and rows[a.peer_id]["left_at"] == ada_left_at
    assert rows[a.peer_id]["joined_at"] < rows[b.peer_id]["joined_at"] < bob_left_at <= ada_left_at
    assert rows[b.peer_id]["user_id"] == bob["id"] and rows[b.peer_id]["display_name"] == "Bob"
    (ended,) = setup.sessions(app_id, meeting_id)
    assert (ended["status"], ended["ended_at"]) == ("ENDED", ada_left_at)
    # Repeating /leave answers the first left_at.
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        again = await http.post(
            f"/meet/{meeting_id}/leave",
            json={"peer_id": b.peer_id},
            headers={"Authorization": f"Bearer {bob['token']}"},
        )
    assert again.status_code == 200 and again.json()["data"] == {"peer_id": b.peer_id, "left_at": bob_left_at}


class SlotEvents:
    """A peer's slot stream (GET .../slots/events) read as it arrives: each `event: slots`, parsed."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout_s: float = 10.0) -> dict[str, Any] | None:
        """The next slots event, or None when the stream ended."""

        async def read() -> dict[str, Any] | None:
            event = None
            async for line in self._lines:
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event == "slots":
                    data: dict[str, Any] = json.loads(line.partition(":")[2])
                    return data
            return None

        return await asyncio.wait_for(read(), timeout_s)


def on_slots(event: dict[str, Any] | None, kind: str) -> list[str | None]:
    assert event is not None, "the stream ended"
    return [slot["participant_id"] for slot in event["slots"] if slot["kind"] == kind]


async def test_a_peer_is_told_who_arrives_on_and_leaves_its_slots_as_it_happens(
    served: ThreadServer, setup: Setup
) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")
    headers = {"Authorization": f"Bearer {ada['token']}"}

    async with (
        join(served.base_url, meeting_id, ada["token"], receive_audio=1, receive_video=1) as a,
        httpx.AsyncClient(base_url=served.base_url, headers=headers, timeout=None) as http,
    ):
        path = f"/meet/{meeting_id}/peers/{a.peer_id}/slots/events"
        async with http.stream("GET", path) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = SlotEvents(response)
            first = await events.next()
            assert on_slots(first, "audio") == [None] and on_slots(first, "video") == [None]

            async with join(served.base_url, meeting_id, bob["token"], audio=ToneTrack(), video=CounterVideoTrack()):
                arrived = await events.next()
                while on_slots(arrived, "video") != [bob["id"]] or on_slots(arrived, "audio") != [bob["id"]]:
                    arrived = await events.next()
            left = await events.next()
            while on_slots(left, "video") != [None] or on_slots(left, "audio") != [None]:
                left = await events.next()

            await a.leave()
            while await events.next() is not None:
                pass  # the stream ends once the peer is gone

        assert (await http.get(path)).status_code == 404


async def test_removing_a_participant_disconnects_them_at_once(served: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")

    async with join(served.base_url, meeting_id, ada["token"], receive_video=1) as a:
        async with join(served.base_url, meeting_id, bob["token"], video=CounterVideoTrack()) as b:
            await a.wait_for_remote("video", bob["id"])

            setup.data("DELETE", f"/{app_id}/meetings/{meeting_id}/participants/{bob['id']}")

            assert await closed_soon(b)
            await a.refresh_slots()
            assert a.remote_tracks[0].slot is None
            (row,) = [row for row in setup.session_peers(app_id, meeting_id) if row["id"] == b.peer_id]
            assert row["left_at"] is not None
            assert served.services.media.peer_count == 1


async def test_kick_all_disconnects_everyone_and_ends_the_session(served: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")

    async with (
        join(served.base_url, meeting_id, ada["token"], audio=ToneTrack()) as a,
        join(served.base_url, meeting_id, bob["token"], audio=ToneTrack()) as b,
    ):
        kicked = setup.data("POST", f"/{app_id}/meetings/{meeting_id}/active-session/kick-all")

        assert kicked == {"action": "kick-all", "kicked_participants_count": 2}
        assert await closed_soon(a) and await closed_soon(b)
        (session,) = setup.sessions(app_id, meeting_id)
        assert session["status"] == "ENDED"


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    """A server with short join and silence timeouts, and room for two peers."""
    media = MediaSettings(join_timeout_s=1.0, silence_timeout_s=2.0, max_peers=2)
    with serve_in_thread(tmp_path_factory.mktemp("impatient") / "data", media) as server:
        yield server


async def test_a_peer_that_never_connects_is_dropped_without_joining(impatient: ThreadServer) -> None:
    setup = Setup(impatient.base_url)
    app_id, meeting_id = setup.meeting()
    ada = setup.participant(app_id, meeting_id, "Ada")
    # A well-formed offer whose candidates lead nowhere: the connection can never come up.
    offer = {"type": "offer", "sdp": offer_sdp(("audio", "sendrecv", ("opus",)))}
    async with httpx.AsyncClient(base_url=impatient.base_url) as http:
        answer = await http.post(
            f"/meet/{meeting_id}/offer", json=offer, headers={"Authorization": f"Bearer {ada['token']}"}
        )
        assert answer.status_code == 200, answer.text
        await eventually(lambda: impatient.services.media.peer_count == 0, timeout_s=5)
        slots = await http.get(
            f"/meet/{meeting_id}/peers/{answer.json()['data']['peer_id']}/slots", params={"authToken": ada["token"]}
        )
    assert slots.status_code == 404
    assert setup.sessions(app_id, meeting_id) == []
    setup.close()


async def test_a_silent_peer_leaves_and_a_full_server_refuses_more(impatient: ThreadServer) -> None:
    setup = Setup(impatient.base_url)
    app_id, meeting_id = setup.meeting(session_keep_alive_time_in_secs=0)
    ada, bob, cy = (setup.participant(app_id, meeting_id, name) for name in ("Ada", "Bob", "Cy"))

    async with join(impatient.base_url, meeting_id, ada["token"], audio=ToneTrack()) as a:
        async with join(impatient.base_url, meeting_id, bob["token"], receive_audio=1):
            offer = {"type": "offer", "sdp": offer_sdp(("audio", "sendrecv", ("opus",)))}
            async with httpx.AsyncClient(base_url=impatient.base_url) as http:
                full = await http.post(
                    f"/meet/{meeting_id}/offer", json=offer, headers={"Authorization": f"Bearer {cy['token']}"}
                )
            assert_error(full, 503, "Server is at capacity, try again later")

        # Ada's network vanishes: her sockets close without a word to the server.
        for connection in ice_connections(a.pc):
            for protocol in connection._protocols:
                protocol.transport.close()
        await eventually(lambda: impatient.services.media.peer_count == 0, timeout_s=5)

        def left() -> bool:
            # Written after the peer is out of the room and its connection closed: a moment later.
            (row,) = [row for row in setup.session_peers(app_id, meeting_id) if row["id"] == a.peer_id]
            return row["left_at"] is not None

        await eventually(left, timeout_s=5)
        (session,) = setup.sessions(app_id, meeting_id)
        assert session["status"] == "ENDED"
    setup.close()
