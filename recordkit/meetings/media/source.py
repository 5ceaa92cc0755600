"""`MediaSource`: what a recorder reads from a meeting, whichever way it is connected (design.md).

A source reports the room as events — `ParticipantJoined`, `TrackAdded`, `TrackEnded`,
`ParticipantLeft` (`events.py`) — starting with the present state, and opens readers on tracks:
`packets(track_id)` yields the encoded frames as published (`EncodedFrame`), `frames(track_id)` the
decoded ones (`TimedFrame`, `av.VideoFrame` or `av.AudioFrame`), decoding only while that reader is
open. Both readers start video at a keyframe (asking the publisher for one) and end when the track ends.

Time: each frame has `pts` in `time_base` (the track's codec clock) and `wall_time_s`, the Unix time
at which its sender sent it on this machine's clock, derived from the sender's RTCP reports
(`timing.py`). Place frames on a timeline by `wall_time_s` to line up audio with video and participants
with each other; use `pts` differences for spacing within a track.

`RoomSource` is the in-process source over a `Room`; it is not a peer, so the recorder never counts
as a participant. There the sender is the participant: `wall_time_s` is when they sent the frame, and
pts count from the track's first frame. `WebRTCSource` (`webrtc_source.py`) joins a media node as a
hidden peer over `recordkit.bot.client`, whose received tracks are the same `ReceivedTrack`s; there the
sender is the media node, so `wall_time_s` is when the node forwarded the frame (its arrival there plus
microseconds), and pts go on from the receive section's earlier tracks. The node forwards every track
alike, as it arrives, so a participant's audio and video stay in sync by `wall_time_s` either way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from recordkit.meetings.media.bitstream import DEFAULT_MAX_FRAME_SIZE, FrameSize
from recordkit.meetings.media.events import (
    ParticipantInfo,
    ParticipantJoined,
    RoomEvent,
    TrackAdded,
    TrackInfo,
)
from recordkit.meetings.media.reading import FrameReader, PacketReader
from recordkit.meetings.media.receiving import ReceivedTrack
from recordkit.meetings.media.room import Room


class UnknownTrack(KeyError):
    """No live track with that id in the room."""


class EventStream:
    """Room events for one reader: the present state first, then each change as it is pushed."""

    def __init__(self, present: list[RoomEvent], on_close: Callable[[EventStream], None] | None = None) -> None:
        self._queue: deque[RoomEvent] = deque(present)
        self._on_close = on_close
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def push(self, event: RoomEvent) -> None:
        """One more event (nothing is taken once closed)."""
        if self._closed:
            return
        self._queue.append(event)
        self._wake()

    def close(self) -> None:
        """Stop listening; the iterator ends once what was pushed before is read."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close(self)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> RoomEvent:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._queue.popleft()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class MediaSource(Protocol):
    """A meeting's media as a recorder reads it."""

    max_frame_size: FrameSize  # the largest picture `frames()` decodes; a recorder decoding packets keeps to it too

    def events(self) -> EventStream:
        """The room's events, present state first (joins carry `at_s == 0.0` for those already in)."""
        ...

    def participants(self) -> list[ParticipantInfo]:
        """The participants connected now, in join order."""
        ...

    def tracks(self) -> list[TrackInfo]:
        """The tracks published now, in join order."""
        ...

    def packets(self, track_id: str) -> PacketReader:
        """A reader of the track's encoded frames (raises `UnknownTrack`)."""
        ...

    def frames(self, track_id: str) -> FrameReader:
        """A reader of the track's decoded frames (raises `UnknownTrack`)."""
        ...

    def request_keyframe(self, track_id: str) -> None:
        """Ask the track's publisher for a keyframe (readers do this themselves when they open)."""
        ...

    async def close(self) -> None:
        """Close every stream and reader opened through this source."""
        ...


class RoomSource:
    """The `MediaSource` of a room in this process."""

    def __init__(
        self, room: Room, max_frame_size: FrameSize = DEFAULT_MAX_FRAME_SIZE, on_close: Callable[[], None] | None = None
    ) -> None:
        self.room = room
        self.max_frame_size = max_frame_size
        self._on_close = on_close
        self._open: list[EventStream | PacketReader | FrameReader] = []
        self._closed = False
        # Listening keeps the room alive while it has no peers.
        room.listeners.append(self._keep_alive)

    def _keep_alive(self, event: RoomEvent) -> None:
        pass

    def events(self) -> EventStream:
        present: list[RoomEvent] = [ParticipantJoined(info, 0.0) for info in self.room.joined_participants()]
        present += [TrackAdded(publication.info) for publication in self.room.publications]
        stream = EventStream(present, on_close=self._stop_listening)
        self.room.listeners.append(stream.push)
        self._open.append(stream)
        return stream

    def _stop_listening(self, stream: EventStream) -> None:
        if stream.push in self.room.listeners:
            self.room.listeners.remove(stream.push)

    def participants(self) -> list[ParticipantInfo]:
        return self.room.joined_participants()

    def tracks(self) -> list[TrackInfo]:
        return [publication.info for publication in self.room.publications]

    def packets(self, track_id: str) -> PacketReader:
        reader = PacketReader(self._track(track_id))
        self._open.append(reader)
        return reader

    def frames(self, track_id: str) -> FrameReader:
        reader = FrameReader(self._track(track_id), max_frame_size=self.max_frame_size)
        self._open.append(reader)
        return reader

    def request_keyframe(self, track_id: str) -> None:
        self._track(track_id).request_keyframe()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for item in self._open:
            item.close()
        if self._keep_alive in self.room.listeners:
            self.room.listeners.remove(self._keep_alive)
        if self._on_close is not None:
            self._on_close()

    def _track(self, track_id: str) -> ReceivedTrack:
        for publication in self.room.publications:
            if publication.info.track_id == track_id:
                return publication.track
        raise UnknownTrack(track_id)

    async def __aenter__(self) -> RoomSource:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
