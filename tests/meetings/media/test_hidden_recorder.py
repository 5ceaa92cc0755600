"""A recorder joining a meeting over WebRTC with a recorder token is a hidden peer: it receives
everything, but nobody sees it, it never counts as present, and each kind of token opens only its own
doors."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from recordkit.bot.client import join
from recordkit.config import MediaSettings
from recordkit.meetings.media.bitstream import FrameSize, declared_sizes
from recordkit.meetings.media.events import ParticipantJoined, ParticipantLeft, TrackAdded, TrackEnded
from recordkit.meetings.media.reading import PacketReader
from recordkit.meetings.media.room import RECORDER_SWITCH_GAP_S
from recordkit.meetings.media.source import EventStream
from recordkit.meetings.media.webrtc_source import WebRTCSource
from recordkit.meetings.tokens import ParticipantClaims, ParticipantTokens, RecorderClaims
from tests.helpers import ACCOUNT_ID, assert_error
from tests.meetings.media.sdp import offer_sdp
from tests.support.media import (
    PacketLoopTrack,
    Setup,
    ThreadServer,
    encode_opus,
    encode_vp8,
    honour_keyframe_requests,
    serve_in_thread,
)

CLIP = {"audio": encode_opus(50), "video": encode_vp8(30)}
SMALL_VIDEO = encode_vp8(30, width=160, height=90)


def publishing() -> dict[str, PacketLoopTrack]:
    return {"audio": PacketLoopTrack("audio", CLIP["audio"]), "video": PacketLoopTrack("video", CLIP["video"])}


def recorder_token(served: ThreadServer, app_id: str, meeting_id: str) -> str:
    token: str = served.services.tokens.issue_recorder(ACCOUNT_ID, app_id, meeting_id, str(uuid.uuid4()))
    return token


async def next_events(stream: EventStream, count: int) -> list[Any]:
    return [await asyncio.wait_for(anext(stream), 5) for _ in range(count)]


async def eventually(check: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def test_a_participant_token_is_never_a_recorder_token_and_back() -> None:
    tokens = ParticipantTokens("k" * 32)
    recorder = tokens.issue_recorder("acc", "app", "meeting", "recording")
    participant = tokens.issue(ParticipantClaims("acc", "app", "meeting", "person"))
    assert tokens.read_recorder(recorder) == RecorderClaims("acc", "app", "meeting", "recording")
    assert tokens.read(recorder) is None
    assert tokens.read_recorder(participant) is None
    assert tokens.read(participant) == ParticipantClaims("acc", "app", "meeting", "person")
    assert ParticipantTokens("other key" * 4).read_recorder(recorder) is None


async def test_a_recorder_is_never_listed_and_never_keeps_a_session(served: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = setup.meeting(session_keep_alive_time_in_secs=0)
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")

    # Alone in the meeting, the recorder listens and starts nothing.
    source = await WebRTCSource.join(served.base_url, meeting_id, recorder_token(served, app_id, meeting_id))
    stream = source.events()
    assert source.participants() == [] and setup.sessions(app_id, meeting_id) == []

    async with join(served.base_url, meeting_id, ada["token"], **publishing()) as a:
        async with join(served.base_url, meeting_id, bob["token"], receive_video=2) as b:
            await next_events(stream, 4)  # Ada and her tracks, Bob
            slots = await b.refresh_slots()
            assert [remote.slot.participant_id for remote in slots if remote.slot] == [ada["id"]]
            (session,) = setup.sessions(app_id, meeting_id)
            assert (session["status"], session["live_participants"]) == ("LIVE", 2)
            assert {row["id"] for row in setup.session_peers(app_id, meeting_id)} == {a.peer_id, b.peer_id}
            room = served.services.media.rooms[meeting_id]
            assert source.peer.peer_id in room.peers
            assert [who.peer_id for who in room.joined_participants()] == [a.peer_id, b.peer_id]
            assert [who.peer_id for who in source.participants()] == [a.peer_id, b.peer_id]

    # Everyone left but the recorder: the session is over.
    await next_events(stream, 4)
    (session,) = setup.sessions(app_id, meeting_id)
    assert (session["status"], session["live_participants"]) == ("ENDED", 0)
    assert source.peer.peer_id not in {row["id"] for row in setup.session_peers(app_id, meeting_id)}
    await source.close()
    assert [event async for event in stream] == []
    await eventually(lambda: meeting_id not in served.services.media.rooms)


async def test_a_recorder_dropped_by_the_node_sees_everyone_leave(
    served: ThreadServer, setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    app_id, meeting_id = setup.meeting()
    ada = setup.participant(app_id, meeting_id, "Ada")
    token = recorder_token(served, app_id, meeting_id)

    async with join(served.base_url, meeting_id, ada["token"], **publishing()) as a:
        async with await WebRTCSource.join(served.base_url, meeting_id, token) as source:
            stream = source.events()
            await eventually(lambda: len(source.tracks()) == 2)
            video = next(track for track in source.tracks() if track.kind == "video")
            reader = source.packets(video.track_id)
            await next_events(stream, 3)
            assert await asyncio.wait_for(reader.next(), 5) is not None

            with caplog.at_level(logging.WARNING, logger="recordkit.meetings.media.webrtc_source"):
                # The recorder's peer goes away on the node (here through its own /leave, from outside).
                async with httpx.AsyncClient(base_url=served.base_url) as http:
                    left = await http.post(
                        f"/meet/{meeting_id}/leave",
                        json={"peer_id": source.peer.peer_id},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                assert left.status_code == 200 and left.json()["data"]["left_at"]
                gone = [event async for event in stream]
                assert [type(event) for event in gone] == [TrackEnded, TrackEnded, ParticipantLeft]
                assert gone[2].participant.peer_id == a.peer_id
                assert await asyncio.wait_for(reader.next(), 5) is None
            assert source.participants() == [] and source.tracks() == []
            assert [event async for event in source.events()] == []
            assert any("recorder lost meeting" in record.getMessage() for record in caplog.records)
        # Ada never noticed.
        assert a.pc.connectionState == "connected"
        (session,) = setup.sessions(app_id, meeting_id)
        assert session["live_participants"] == 1


async def test_each_kind_of_token_opens_only_its_own_doors(served: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = setup.meeting()
    _, other_meeting = setup.meeting(app_id)
    ada = setup.participant(app_id, meeting_id, "Ada")
    token = recorder_token(served, app_id, meeting_id)

    def offer(*sections: tuple[str, str | None, tuple[str, ...]]) -> dict[str, str]:
        return {"type": "offer", "sdp": offer_sdp(*sections)}

    async with httpx.AsyncClient(base_url=served.base_url) as http:

        async def call(method: str, path: str, bearer: str, **kwargs: Any) -> httpx.Response:
            return await http.request(method, path, headers={"Authorization": f"Bearer {bearer}"}, **kwargs)

        receiving = offer(("audio", "recvonly", ("opus",)), ("video", "recvonly", ("VP8",)))
        sending = await call("POST", f"/meet/{meeting_id}/offer", token, json=offer(("audio", "sendrecv", ("opus",))))
        assert_error(sending, 400, 'BAD_REQUEST: "sdp" section 0 sends, and a recorder only receives')
        elsewhere = await call("POST", f"/meet/{other_meeting}/offer", token, json=receiving)
        assert_error(elsewhere, 403, "Participant is not allowed to perform this action")
        peer_id = str(uuid.uuid4())
        for path in (f"/meet/{meeting_id}/peers/{peer_id}/slots", f"/meet/{meeting_id}/peers/{peer_id}/slots/events"):
            assert_error(await call("GET", path, token), 403, "Participant is not allowed to perform this action")
        room = await call("GET", f"/meet/{meeting_id}/peers/{peer_id}/room", ada["token"])
        assert_error(room, 403, "Participant is not allowed to perform this action")
        unknown = await call("GET", f"/meet/{meeting_id}/peers/{peer_id}/room", token)
        assert_error(unknown, 404, f"No peer found with id {peer_id}")
        api = await call("GET", f"/client/v4/accounts/{ACCOUNT_ID}/realtime/kit/{app_id}/sessions", token)
        assert api.status_code == 401


async def test_a_recorders_section_takes_the_next_track_only_after_it_heard_the_last_one_ended(
    served: ThreadServer, setup: Setup
) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")
    # Told apart by their pictures' sizes.
    small = {"audio": PacketLoopTrack("audio", CLIP["audio"]), "video": PacketLoopTrack("video", SMALL_VIDEO)}

    async def collect_sizes(reader: PacketReader, seen: set[FrameSize]) -> None:
        while (frame := await reader.next()) is not None:
            seen.update(declared_sizes("video/VP8", frame.data))

    async with join(served.base_url, meeting_id, ada["token"], **publishing()) as a:
        async with join(served.base_url, meeting_id, bob["token"], **small) as b:
            honour_keyframe_requests(b.pc)
            await eventually(lambda: len(served.services.media.rooms[meeting_id].publications) == 4)
            token = recorder_token(served, app_id, meeting_id)
            async with await WebRTCSource.join(served.base_url, meeting_id, token, receive=1) as source:
                stream = source.events()
                await next_events(stream, 4)  # Ada, Bob, and Ada's tracks on the only two sections
                (ada_video,) = [track for track in source.tracks() if track.kind == "video"]
                assert ada_video.participant.peer_id == a.peer_id
                seen_on_ada: set[FrameSize] = set()
                reading = asyncio.ensure_future(collect_sizes(source.packets(ada_video.track_id), seen_on_ada))
                await eventually(lambda: seen_on_ada)  # a keyframe came

                await a.leave()
                ended = await next_events(stream, 3)
                ended_s = asyncio.get_running_loop().time()
                assert [type(event) for event in ended] == [TrackEnded, TrackEnded, ParticipantLeft]
                added = await next_events(stream, 2)
                waited_s = asyncio.get_running_loop().time() - ended_s
                assert {event.track.participant.peer_id for event in added} == {b.peer_id}
                assert waited_s > RECORDER_SWITCH_GAP_S - 0.1

                await asyncio.wait_for(reading, 5)
                assert seen_on_ada == {FrameSize(320, 180)}
                (bob_video,) = [track for track in source.tracks() if track.kind == "video"]
                async with source.packets(bob_video.track_id) as reader:
                    first = await asyncio.wait_for(reader.next(), 5)
                assert first is not None and declared_sizes("video/VP8", first.data) == [FrameSize(160, 90)]


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    """A server with room for two peers and a short silence timeout."""
    media = MediaSettings(silence_timeout_s=2.0, max_peers=2)
    with serve_in_thread(tmp_path_factory.mktemp("crowded") / "data", media) as server:
        yield server


async def test_a_recorder_takes_a_place_on_the_node_and_stays_while_it_only_receives(crowded: ThreadServer) -> None:
    setup = Setup(crowded.base_url)
    app_id, meeting_id = setup.meeting()
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")

    async with join(crowded.base_url, meeting_id, ada["token"], **publishing()):
        token = recorder_token(crowded, app_id, meeting_id)
        async with await WebRTCSource.join(crowded.base_url, meeting_id, token, receive=1) as source:
            assert await _offer_status(crowded, meeting_id, bob["token"]) == 503
            stream = source.events()
            assert [type(event) for event in await next_events(stream, 3)] == [
                ParticipantJoined,
                TrackAdded,
                TrackAdded,
            ]
            # Sending nothing for longer than the silence timeout: its receiver reports keep it in.
            await asyncio.sleep(3.0)
            assert source.peer.peer_id in crowded.services.media.rooms[meeting_id].peers
            assert len(source.participants()) == 1
    setup.close()


async def _offer_status(served: ThreadServer, meeting_id: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        response = await http.post(
            f"/meet/{meeting_id}/offer",
            json={"type": "offer", "sdp": offer_sdp(("audio", "recvonly", ("opus",)))},
            headers={"Authorization": f"Bearer {token}"},
        )
    return response.status_code
