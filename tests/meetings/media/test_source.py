"""The recorder's in-process view of a room (`RoomSource`): events, decoded and raw frames with times
that line up across tracks, decoding only on demand, and never counting as a participant."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator
from typing import Any

import aiortc.codecs.opus
import aiortc.codecs.vpx
import av
import pytest

from recordkit.bot.client import join
from recordkit.meetings.media.events import ParticipantJoined, ParticipantLeft, TrackAdded, TrackEnded
from recordkit.meetings.media.source import EventStream, RoomSource, UnknownTrack
from tests.support.media import PacketLoopTrack, Setup, ThreadServer, encode_opus, encode_vp8


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts calls to aiortc's VP8 and Opus decoders anywhere in this process."""
    count = [0]
    for decoder in (aiortc.codecs.vpx.Vp8Decoder, aiortc.codecs.opus.OpusDecoder):
        original = decoder.decode

        def counted(self: Any, frame: Any, _original: Any = original) -> Any:
            count[0] += 1
            return _original(self, frame)

        monkeypatch.setattr(decoder, "decode", counted)
    yield count


def packet_tracks() -> dict[str, PacketLoopTrack]:
    """Audio and video from pre-encoded frames: both start at pts 0 at the same instant."""
    return {"audio": PacketLoopTrack("audio", encode_opus(50)), "video": PacketLoopTrack("video", encode_vp8(30))}


async def next_events(stream: EventStream, count: int) -> list[Any]:
    return [await asyncio.wait_for(anext(stream), 5) for _ in range(count)]


async def test_a_room_source_reports_who_comes_and_goes_with_their_tracks(served: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = setup.meeting()
    ada, bob = setup.participant(app_id, meeting_id, "Ada"), setup.participant(app_id, meeting_id, "Bob")
    media = served.services.media

    async with join(served.base_url, meeting_id, ada["token"], **packet_tracks()) as a:
        source: RoomSource = await served.call(_open(media, meeting_id))
        stream = source.events()
        present = await served.call(next_events(stream, 3))
        assert isinstance(present[0], ParticipantJoined) and present[0].participant.peer_id == a.peer_id
        assert {(e.track.kind, e.track.codec) for e in present[1:]} == {("audio", "audio/opus"), ("video", "video/VP8")}
        assert all(isinstance(e, TrackAdded) and e.track.participant.name == "Ada" for e in present[1:])

        async with join(served.base_url, meeting_id, bob["token"], **packet_tracks()) as b:
            joined = await served.call(next_events(stream, 3))
            assert [type(e) for e in joined] == [ParticipantJoined, TrackAdded, TrackAdded]
            assert joined[0].participant.participant_id == bob["id"]
            # The source is not a participant: two people, two live participants.
            (session,) = setup.sessions(app_id, meeting_id)
            assert session["live_participants"] == 2
            await b.leave()
            left = await served.call(next_events(stream, 3))
            assert [type(e) for e in left] == [TrackEnded, TrackEnded, ParticipantLeft]
            assert {e.track.track_id for e in left[:2]} == {e.track.track_id for e in joined[1:]}

        await served.call(source.close())
        assert a.peer_id


async def _open(media: Any, meeting_id: str, tracks: int = 0) -> RoomSource:
    """Open a source on the server's loop, once the room has `tracks` tracks (the client may be
    connected a moment before the server has recorded the join)."""
    source: RoomSource = media.open_source(meeting_id)
    for _ in range(100):
        if len(source.tracks()) >= tracks:
            break
        await asyncio.sleep(0.05)
    return source


async def test_frames_are_decoded_only_while_someone_reads_them(
    served: ThreadServer, setup: Setup, decodes: list[int]
) -> None:
    app_id, meeting_id = setup.meeting()
    ada = setup.participant(app_id, meeting_id, "Ada")

    async def read(source: RoomSource) -> tuple[int, list[Any], int, list[Any]]:
        video = next(track for track in source.tracks() if track.kind == "video")
        audio = next(track for track in source.tracks() if track.kind == "audio")
        await asyncio.sleep(0.5)  # media flows, nobody reads
        idle = decodes[0]
        async with source.frames(video.track_id) as reader:
            pictures = [await reader.next() for _ in range(5)]
        stopped = decodes[0]
        async with source.packets(audio.track_id) as packets:
            encoded = [await packets.next() for _ in range(5)]
        await asyncio.sleep(0.3)
        assert decodes[0] == stopped, "decoding went on after the reader closed"
        with pytest.raises(UnknownTrack):
            source.frames("no-such-track")
        return idle, pictures, stopped, encoded

    async with join(served.base_url, meeting_id, ada["token"], **packet_tracks()):
        async with await served.call(_open(served.services.media, meeting_id, 2)) as source:
            idle, pictures, stopped, encoded = await served.call(read(source))

    assert idle == 0
    assert stopped >= 5
    assert all(isinstance(f.frame, av.VideoFrame) and f.time_base == f.frame.time_base for f in pictures)
    assert [f.pts for f in pictures] == sorted(f.pts for f in pictures)
    assert all(frame.time_base.denominator == 48_000 and frame.data for frame in encoded)


async def test_audio_and_video_of_one_sender_line_up_by_wall_time(served: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = setup.meeting()
    ada = setup.participant(app_id, meeting_id, "Ada")

    async def starts(source: RoomSource) -> dict[str, float]:
        # Wait for the sender's first RTCP reports, then read both tracks.
        await asyncio.sleep(2.5)
        start: dict[str, float] = {}
        for track in source.tracks():
            async with source.packets(track.track_id) as reader:
                frames = [await reader.next() for _ in range(20)]
            # When pts 0 of this track was sent, by each frame's wall time.
            start[track.kind] = statistics.median(f.wall_time_s - f.pts * float(f.time_base) for f in frames)
        return start

    tracks = packet_tracks()
    async with join(served.base_url, meeting_id, ada["token"], **tracks):
        async with await served.call(_open(served.services.media, meeting_id, 2)) as source:
            start = await served.call(starts(source))

    # Both tracks began at pts 0 within a few ms of each other (their first recv calls).
    assert tracks["audio"]._start is not None and tracks["video"]._start is not None
    sent_apart_s = tracks["audio"]._start - tracks["video"]._start
    assert abs((start["audio"] - start["video"]) - sent_apart_s) < 0.040
