"""Joining a meeting's media (meetings.md §8): two participants see and hear each other through the
server, which forwards without re-encoding; refused joins leave the room alone; presets and slots."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiortc.codecs.h264
import aiortc.codecs.opus
import aiortc.codecs.vpx
import av
import httpx
import pytest
from aiortc.sdp import SessionDescription

from recordkit.bot.client import join
from recordkit.meetings.media.receiving import EncodedFrame
from tests.helpers import API_TOKEN, assert_error
from tests.meetings.media.conftest import decoded, keeps_receiving
from tests.meetings.media.sdp import offer_sdp
from tests.support.media import (
    CounterVideoTrack,
    PacketLoopTrack,
    Setup,
    ThreadServer,
    ToneTrack,
    encode_opus,
    encode_vp8,
)


def joining(served: ThreadServer, meeting_id: str, participant: dict[str, Any], publish: bool = True, **kw: Any) -> Any:
    """`join` with a tone and a counter video (unless `publish` is False), receiving one of each."""
    media = {"audio": ToneTrack(), "video": CounterVideoTrack()} if publish else {}
    return join(
        served.base_url, meeting_id, participant["token"], **media, **{"receive_audio": 1, "receive_video": 1, **kw}
    )


async def test_two_participants_see_and_hear_each_other(served: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")

    async with joining(served, meeting_id, ada) as a, joining(served, meeting_id, bob) as b:
        for peer, other in ((a, bob), (b, ada)):
            video = await peer.wait_for_remote("video", other["id"])
            audio = await peer.wait_for_remote("audio", other["id"])
            pictures = await decoded(video, 10)
            sounds = await decoded(audio, 25)

            assert all(isinstance(f.frame, av.VideoFrame) for f in pictures)
            assert {(f.frame.width, f.frame.height) for f in pictures} == {(320, 180)}
            assert all(isinstance(f.frame, av.AudioFrame) and f.frame.sample_rate == 48_000 for f in sounds)
            for frames in (pictures, sounds):
                assert [f.pts for f in frames] == sorted({f.pts for f in frames})
                assert all(abs(f.wall_time_s - time.time()) < 2 for f in frames)
            assert video.slot is not None and video.slot.name == other["name"]


async def test_slots_say_who_is_on_each_receive_section(served: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")

    async with joining(served, meeting_id, ada, receive_video=2) as a, joining(served, meeting_id, bob) as b:
        await a.wait_for_remote("video")
        async with httpx.AsyncClient(base_url=served.base_url) as http:
            response = await http.get(f"/meet/{meeting_id}/peers/{a.peer_id}/slots", params={"authToken": ada["token"]})

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["peer_id"] == a.peer_id
    on_bob = {"participant_id": bob["id"], "peer_id": b.peer_id, "name": "Bob", "custom_participant_id": "user-Bob"}
    empty = dict.fromkeys(("participant_id", "peer_id", "name", "custom_participant_id", "track_id"))
    slots = [{k: v for k, v in slot.items() if k != "track_id"} for slot in data["slots"]]
    assert slots == [
        {"mid": "2", "kind": "audio", **on_bob},
        {"mid": "3", "kind": "video", **on_bob},
        {"mid": "4", "kind": "video", **{k: v for k, v in empty.items() if k != "track_id"}},
    ]
    assert data["slots"][0]["track_id"] and data["slots"][2]["track_id"] is None


@pytest.fixture
def encoder_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Counts every call to aiortc's encoders' `encode` (a real encode) and `pack` (packetizing only)."""
    calls = {"encode": 0, "pack": 0}
    for encoder in (aiortc.codecs.vpx.Vp8Encoder, aiortc.codecs.opus.OpusEncoder, aiortc.codecs.h264.H264Encoder):
        for name in ("encode", "pack"):
            original = getattr(encoder, name)

            def counted(self: Any, *args: Any, _original: Any = original, _name: str = name) -> Any:
                calls[_name] += 1
                return _original(self, *args)

            monkeypatch.setattr(encoder, name, counted)
    yield calls


async def test_forwarded_media_is_never_reencoded(
    served: ThreadServer, setup: Setup, encoder_calls: dict[str, int]
) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")
    video_payloads, audio_payloads = encode_vp8(frames=30), encode_opus(frames=50)
    # Ada sends pre-encoded frames, so nobody in this process has any reason to encode.
    tracks = {"video": PacketLoopTrack("video", video_payloads), "audio": PacketLoopTrack("audio", audio_payloads)}

    async with (
        join(served.base_url, meeting_id, ada["token"], **tracks),
        joining(served, meeting_id, bob, publish=False) as b,
    ):
        received: dict[str, list[EncodedFrame]] = {"video": [], "audio": []}
        for kind, frames in received.items():
            async with (await b.wait_for_remote(kind, ada["id"])).packets() as reader:
                async for frame in reader:
                    frames.append(frame)
                    if len(frames) == 40:
                        break
        pictures = await decoded(await b.wait_for_remote("video"), 5)

    assert {frame.data for frame in received["video"]} <= set(video_payloads)
    assert {frame.data for frame in received["audio"]} <= set(audio_payloads)
    assert len({frame.data for frame in received["video"]}) > 20
    assert all(isinstance(f.frame, av.VideoFrame) for f in pictures)
    assert encoder_calls["encode"] == 0
    assert encoder_calls["pack"] > 100  # the spy works: packetizing is all that happened


async def post_offer(served: ThreadServer, meeting_id: str, token: str | None, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        return await http.post(f"/meet/{meeting_id}/offer", json=body, headers=headers)


async def test_refused_joins_do_not_disturb_the_room(served: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")
    _, other_meeting = setup.meeting(app_id)
    stranger = setup.participant(app_id, other_meeting, "Sam")
    _, closed_meeting = setup.meeting(app_id, status="INACTIVE")
    late = setup.participant(app_id, closed_meeting, "Lee")
    good = {"type": "offer", "sdp": offer_sdp(("audio", "sendrecv", ("opus",)), ("video", "sendrecv", ("VP8",)))}
    unknown = str(uuid.uuid4())

    async with joining(served, meeting_id, ada) as a, joining(served, meeting_id, bob) as b:
        remotes = [await a.wait_for_remote("video"), await b.wait_for_remote("video"), await b.wait_for_remote("audio")]

        assert_error(await post_offer(served, meeting_id, None, good), 401, "Unauthorized")
        assert_error(await post_offer(served, meeting_id, "not-a-token", good), 401, "Unauthorized")
        assert_error(await post_offer(served, meeting_id, ada["token"][:-4] + "AAAA", good), 401, "Unauthorized")
        forbidden = "Participant is not allowed to perform this action"
        assert_error(await post_offer(served, meeting_id, API_TOKEN, good), 403, forbidden)
        assert_error(await post_offer(served, meeting_id, stranger["token"], good), 403, forbidden)
        not_found = f"No meeting found with id {unknown}"
        assert_error(await post_offer(served, unknown, ada["token"], good), 404, not_found)
        for body, message in (
            ({"type": "offer", "sdp": "v=0\r\nnonsense"}, 'BAD_REQUEST: "sdp" offers no audio or video section'),
            ({"type": "offer", "sdp": "v=0\r\nm=audio x\r\n"}, 'BAD_REQUEST: "sdp" is not a valid SDP offer'),
            ({"type": "offer", "sdp": "hello"}, 'BAD_REQUEST: "sdp" is not a valid SDP offer'),
            ({"type": "offer"}, 'BAD_REQUEST: "sdp" is required'),
            (
                {"type": "offer", "sdp": offer_sdp(("video", "sendonly", ("VP9",)))},
                'BAD_REQUEST: "sdp" offers no acceptable video codec in section 0 (VP9; needs VP8 or H264)',
            ),
        ):
            assert_error(await post_offer(served, meeting_id, ada["token"], body), 400, message)
        inactive = f"Meeting {closed_meeting} is INACTIVE"
        assert_error(await post_offer(served, closed_meeting, late["token"], good), 409, inactive)
        async with httpx.AsyncClient(
            base_url=served.base_url, headers={"Authorization": f"Bearer {ada['token']}"}
        ) as h:
            assert_error(
                await h.post(f"/meet/{meeting_id}/leave", json={"peer_id": unknown}),
                404,
                f"No peer found with id {unknown}",
            )
            assert_error(
                await h.post(f"/meet/{meeting_id}/leave", json={"peer_id": b.peer_id}),
                404,
                f"No peer found with id {b.peer_id}",
            )
            assert_error(
                await h.get(f"/meet/{meeting_id}/peers/{unknown}/slots"), 404, f"No peer found with id {unknown}"
            )

        for remote in remotes:
            assert await keeps_receiving(remote), "a refused join disturbed the media of peers in the room"
        assert a.pc.connectionState == b.pc.connectionState == "connected"
        (session,) = setup.sessions(app_id, meeting_id)
        assert session["live_participants"] == 2


async def test_viewer_cannot_publish_but_sees_the_others(served: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = setup.meeting()
    ada = setup.participant(app_id, meeting_id, "Ada")
    vic = setup.participant(app_id, meeting_id, "Vic", preset="webinar_viewer")

    async with joining(served, meeting_id, ada) as a, joining(served, meeting_id, vic) as v:
        answer = SessionDescription.parse(v.pc.remoteDescription.sdp)
        assert [m.direction for m in answer.media] == ["inactive", "inactive", "sendonly", "sendonly"]
        assert len(await decoded(await v.wait_for_remote("video", ada["id"]), 5)) == 5
        await asyncio.sleep(0.5)
        await a.refresh_slots()
        assert [remote.slot for remote in a.remote_tracks] == [None, None]
        assert all(remote.frames_received == 0 for remote in a.remote_tracks)


async def test_a_freed_slot_goes_to_the_next_participant_in_join_order(served: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob, cy = (setup.participant(app_id, meeting_id, name) for name in ("Ada", "Bob", "Cy"))

    async with join(served.base_url, meeting_id, ada["token"], receive_video=1) as a:
        async with joining(served, meeting_id, bob) as b, joining(served, meeting_id, cy):
            remote = await a.wait_for_remote("video")
            assert remote.slot is not None and remote.slot.participant_id == bob["id"]
            await b.leave()
            await a.wait_for_remote("video", cy["id"])
            assert len(await decoded(remote, 5)) == 5
