"""What a recorder may count on from any `MediaSource`: the in-process `RoomSource` and the `WebRTCSource`
that joins the same server over WebRTC as a hidden peer pass the same checks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import av
import pytest

from recordkit.bot.client import JoinedPeer, join
from recordkit.meetings.media.events import ParticipantJoined, ParticipantLeft, TrackAdded, TrackEnded
from recordkit.meetings.media.source import EventStream, MediaSource, RoomSource, UnknownTrack
from recordkit.meetings.media.timing import media_now_s
from recordkit.meetings.media.webrtc_source import WebRTCSource
from tests.helpers import ACCOUNT_ID
from tests.support.media import PacketLoopTrack, Setup, ThreadServer, encode_opus, encode_vp8, honour_keyframe_requests

# One keyframe in 3 s: a reader that starts at a keyframe, or a keyframe asked for, comes from a request.
CLIP = {"audio": encode_opus(50), "video": encode_vp8(90, gop=90)}


@dataclass
class Opened:
    """A source and how to run work on the loop it lives on (the server's, for a `RoomSource`)."""

    source: MediaSource
    run: Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]]


Opener = Callable[[str, str], Awaitable[Opened]]


@pytest.fixture(params=["room", "webrtc"])
async def open_source(request: pytest.FixtureRequest, served: ThreadServer) -> AsyncIterator[Opener]:
    """Opens a source of each kind on a meeting, and closes it after the test."""
    opened: list[Opened] = []

    async def room(app_id: str, meeting_id: str) -> Opened:
        source: RoomSource = await served.call(_room_source(served, meeting_id))
        return Opened(source, served.call)

    async def webrtc(app_id: str, meeting_id: str) -> Opened:
        token = served.services.tokens.issue_recorder(ACCOUNT_ID, app_id, meeting_id, str(uuid.uuid4()))
        source = await WebRTCSource.join(served.base_url, meeting_id, token)
        return Opened(source, lambda work: asyncio.wait_for(work, 20))

    async def open_one(app_id: str, meeting_id: str) -> Opened:
        one = await (room if request.param == "room" else webrtc)(app_id, meeting_id)
        opened.append(one)
        return one

    yield open_one
    for one in opened:
        await one.run(one.source.close())


async def _room_source(served: ThreadServer, meeting_id: str) -> RoomSource:
    source: RoomSource = served.services.media.open_source(meeting_id)
    return source


async def joined(stack: AsyncExitStack, served: ThreadServer, meeting_id: str, token: str, **kwargs: Any) -> JoinedPeer:
    """A bot in the meeting, once the server has it in the room (a client is connected a moment before
    the server has recorded its join)."""
    peer = await stack.enter_async_context(join(served.base_url, meeting_id, token, **kwargs))
    honour_keyframe_requests(peer.pc)

    async def in_room() -> None:
        while True:
            room = served.services.media.rooms.get(meeting_id)
            live = room.peers.get(peer.peer_id) if room is not None else None
            if live is not None and live.joined:
                return
            await asyncio.sleep(0.02)

    await served.call(in_room())
    return peer


def publishing() -> dict[str, PacketLoopTrack]:
    """Audio and video from pre-encoded frames (no encoding cost)."""
    return {"audio": PacketLoopTrack("audio", CLIP["audio"]), "video": PacketLoopTrack("video", CLIP["video"])}


async def next_events(stream: EventStream, count: int) -> list[Any]:
    return [await asyncio.wait_for(anext(stream), 5) for _ in range(count)]


async def test_present_state_comes_first_then_joins_and_leaves(
    served: ThreadServer, setup: Setup, open_source: Opener
) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob, cy = (setup.participant(app_id, meeting_id, name) for name in ("Ada", "Bob", "Cy"))
    async with AsyncExitStack() as stack:
        a = await joined(stack, served, meeting_id, ada["token"], **publishing())
        opened = await open_source(app_id, meeting_id)
        source = opened.source
        stream = source.events()
        present = await opened.run(next_events(stream, 3))
        assert isinstance(present[0], ParticipantJoined) and present[0].at_s == 0.0
        assert (present[0].participant.peer_id, present[0].participant.name) == (a.peer_id, "Ada")
        assert all(isinstance(event, TrackAdded) and event.track.participant.name == "Ada" for event in present[1:])
        assert {(e.track.kind, e.track.codec, e.track.clock_rate) for e in present[1:]} == {
            ("audio", "audio/opus", 48_000),
            ("video", "video/VP8", 90_000),
        }
        assert [track.track_id for track in source.tracks()] == [event.track.track_id for event in present[1:]]

        b = await stack.enter_async_context(AsyncExitStack())
        bob_peer = await joined(b, served, meeting_id, bob["token"], **publishing())
        arrived = await opened.run(next_events(stream, 3))
        assert [type(event) for event in arrived] == [ParticipantJoined, TrackAdded, TrackAdded]
        assert arrived[0].participant.peer_id == bob_peer.peer_id and arrived[0].at_s > 0
        # Someone with neither camera nor microphone is in the meeting all the same.
        cy_peer = await joined(stack, served, meeting_id, cy["token"], receive_audio=1)
        (cy_joined,) = await opened.run(next_events(stream, 1))
        assert isinstance(cy_joined, ParticipantJoined) and cy_joined.participant.name == "Cy"
        assert [who.peer_id for who in source.participants()] == [a.peer_id, bob_peer.peer_id, cy_peer.peer_id]

        await b.aclose()  # Bob leaves
        left = await opened.run(next_events(stream, 3))
        assert [type(event) for event in left] == [TrackEnded, TrackEnded, ParticipantLeft]
        assert {event.track.track_id for event in left[:2]} == {event.track.track_id for event in arrived[1:]}
        assert left[2].participant.peer_id == bob_peer.peer_id
        assert len(source.tracks()) == 2


async def test_packets_start_at_a_keyframe_and_frames_decode_with_current_times(
    served: ThreadServer, setup: Setup, open_source: Opener
) -> None:
    app_id, meeting_id = setup.meeting()
    ada = setup.participant(app_id, meeting_id, "Ada")

    async def read(source: MediaSource) -> dict[str, Any]:
        tracks = {track.kind: track for track in source.tracks()}
        async with source.packets(tracks["video"].track_id) as packets:
            encoded = [await packets.next() for _ in range(10)]
            received_s = media_now_s()
        async with source.frames(tracks["video"].track_id) as frames:
            pictures = [await frames.next() for _ in range(3)]
        async with source.frames(tracks["audio"].track_id) as frames:
            sounds = [await frames.next() for _ in range(3)]
        with pytest.raises(UnknownTrack):
            source.packets("no-such-track")
        async with source.packets(tracks["video"].track_id) as packets:
            await packets.next()  # its own keyframe
            source.request_keyframe(tracks["video"].track_id)
            asked = [await packets.next() for _ in range(30)]
        return {"encoded": encoded, "received_s": received_s, "pictures": pictures, "sounds": sounds, "asked": asked}

    async with AsyncExitStack() as stack:
        await joined(stack, served, meeting_id, ada["token"], **publishing())
        opened = await open_source(app_id, meeting_id)
        got = await opened.run(read(opened.source))

    encoded = got["encoded"]
    assert encoded[0].keyframe
    assert all(frame.time_base.denominator == 90_000 for frame in encoded)
    assert [frame.pts for frame in encoded] == sorted(frame.pts for frame in encoded)
    # Sent just now: at most a reader's wait and the 30 fps spacing of ten frames ago.
    assert all(abs(frame.wall_time_s - got["received_s"]) < 0.8 for frame in encoded)
    assert abs(encoded[-1].wall_time_s - got["received_s"]) < 0.5
    assert all(isinstance(timed.frame, av.VideoFrame) and timed.frame.width == 320 for timed in got["pictures"])
    assert all(isinstance(timed.frame, av.AudioFrame) and timed.frame.sample_rate == 48_000 for timed in got["sounds"])
    assert any(frame.keyframe for frame in got["asked"]), "no keyframe within a second of asking"


async def test_a_tracks_readers_end_with_it_and_closing_ends_the_events(
    served: ThreadServer, setup: Setup, open_source: Opener
) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")

    async def drained(reader: Any) -> int:
        """How many frames the reader still gave before it ended."""
        count = 0
        while await reader.next() is not None:
            count += 1
        return count

    async with AsyncExitStack() as stack:
        await joined(stack, served, meeting_id, ada["token"], **publishing())
        b = await stack.enter_async_context(AsyncExitStack())
        await joined(b, served, meeting_id, bob["token"], **publishing())
        opened = await open_source(app_id, meeting_id)
        source = opened.source
        stream = source.events()
        await opened.run(next_events(stream, 6))
        bobs = [track for track in source.tracks() if track.participant.name == "Bob"]
        ada_video = next(t for t in source.tracks() if t.participant.name == "Ada" and t.kind == "video")
        packets = source.packets(next(track.track_id for track in bobs if track.kind == "video"))
        frames = source.frames(next(track.track_id for track in bobs if track.kind == "audio"))
        ada_reader = source.packets(ada_video.track_id)
        await opened.run(packets.next())

        await b.aclose()  # Bob leaves: his tracks end, and so do their readers
        await opened.run(drained(packets))
        await opened.run(drained(frames))
        ended = await opened.run(next_events(stream, 3))
        assert {event.track.track_id for event in ended[:2]} == {track.track_id for track in bobs}
        assert await opened.run(ada_reader.next()) is not None, "Ada's track goes on"

        await opened.run(source.close())
        rest = await opened.run(_rest(stream))
        assert not [event for event in rest if isinstance(event, ParticipantJoined | TrackAdded)]
        assert await opened.run(ada_reader.next()) is None


async def _rest(stream: EventStream) -> list[Any]:
    """Whatever the stream still gives before it ends (it must end)."""
    return [event async for event in stream]
