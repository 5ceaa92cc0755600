"""`MediaSource`: what a recorder reads from a meeting, whichever way it is connected (design.md).

A source reports the room as events — `ParticipantJoined`, `TrackAdded`, `TrackEnded`,
`ParticipantLeft` (`events.py`) — starting with the present state, and opens readers on tracks:
`packets(track_id)` yields the encoded frames as published (`EncodedFrame`), `frames(track_id)` the
decoded ones (`TimedFrame`, `av.VideoFrame` or `av.AudioFrame`), decoding only while that reader is
open. Both readers start video at a keyframe (asking the publisher for one) and end when the track ends.

Time: each frame has `pts` in `time_base` (the track's codec clock, counted from the track's first
frame) and `wall_time_s`, the Unix time at which its sender sent it on this machine's clock, derived
from the sender's RTCP reports (`timing.py`). Place frames on a timeline by `wall_time_s` to line up
audio with video and participants with each other; use `pts` differences for spacing within a track.

`RoomSource` is the in-process source over a `Room`; it is not a peer, so the recorder never counts
as a participant. (A `WebRTCSource` joining through signalling can offer the same API over
`recordkit.bot.client`, whose received tracks are the same `ReceivedTrack`s.)
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
    """A room's events for one reader: the present state first, then each change as it happens."""

    def __init__(self, room: Room) -> None:
        self._room = room
        self._queue: deque[RoomEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        for participant in room.joined_participants():
            self._queue.append(ParticipantJoined(participant, 0.0))
        self._queue.extend(TrackAdded(publication.info) for publication in room.publications)
        room.listeners.append(self._push)

    def _push(self, event: RoomEvent) -> None:
        self._queue.append(event)
        self._wake()

    def close(self) -> None:
        """Stop listening; the iterator ends."""
        self._closed = True
        if self._push in self._room.listeners:
            self._room.listeners.remove(self._push)
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
        stream = EventStream(self.room)
        self._open.append(stream)
        return stream

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
