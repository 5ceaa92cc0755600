"""`WebRTCSource`: a meeting on a media node, read by a recorder in another process (design.md, fleet).

The recorder joins through the signalling routes (meetings.md §8) with a recorder token, as a hidden
peer: `receive` audio and `receive` video receive-only sections and nothing sent, so it is never listed,
counted as present or recorded. Which track each section carries, and who is in the room (participants
without tracks too), comes from the node's room stream (GET `/meet/{id}/peers/{peer_id}/room`,
server-sent events): every snapshot is compared with the last one and the difference reported as the
same `RoomEvent`s a `RoomSource` gives, with the node's publication ids as track ids.

A reader opened on a track reads the receive section carrying it and is closed when the track leaves
that section. The node keeps a recorder's freed section empty for a moment before the next track moves
in (`room.RECORDER_SWITCH_GAP_S`), so the stream's word that a track ended comes before the next
track's frames, and a reader never reads another participant's frames as its track's.

When the connection or the room stream is lost, every track ends and every participant leaves (a
recorder sees an empty meeting) and the event streams end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from recordkit.bot.client import HTTP_TIMEOUT_S, JoinedPeer, RemoteTrack, SignallingError, connect
from recordkit.meetings.media.bitstream import DEFAULT_MAX_FRAME_SIZE, FrameSize
from recordkit.meetings.media.events import (
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    RoomEvent,
    TrackAdded,
    TrackEnded,
    TrackInfo,
)
from recordkit.meetings.media.reading import FrameReader, PacketReader
from recordkit.meetings.media.source import EventStream, UnknownTrack

log = logging.getLogger(__name__)

# The node sends a keep-alive after 15 s of quiet: three missed in a row means it is gone.
ROOM_STREAM_READ_TIMEOUT_S = 45.0
DEFAULT_RECEIVE = 9


class RoomStreamError(Exception):
    """The room stream could not be opened or was cut before its first snapshot."""


@dataclass(frozen=True)
class _Carried:
    """A track and the receive section carrying it."""

    info: TrackInfo
    remote: RemoteTrack


@dataclass(frozen=True)
class _Snapshot:
    participants: dict[str, ParticipantInfo]  # by peer id, in join order
    joined_at_s: dict[str, float]
    tracks: dict[str, _Carried]  # by track id, in slot order


class WebRTCSource:
    """The `MediaSource` of a meeting on a media node, joined over WebRTC as a hidden peer."""

    def __init__(self, peer: JoinedPeer, max_frame_size: FrameSize = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.peer = peer
        self.max_frame_size = max_frame_size
        self._sections = {remote.mid: remote for remote in peer.remote_tracks}
        self._state = _Snapshot({}, {}, {})
        self._streams: list[EventStream] = []
        self._readers: dict[str, list[PacketReader | FrameReader]] = {}
        self._first_snapshot = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._lost: str | None = None  # why the meeting was lost, once it was
        self._closed = False

    @classmethod
    async def join(
        cls,
        media_url: str,
        meeting_id: str,
        recorder_token: str,
        *,
        receive: int = DEFAULT_RECEIVE,
        max_frame_size: FrameSize | None = None,
        connect_timeout_s: float = 10.0,
    ) -> WebRTCSource:
        """Join the meeting on the media node at `media_url` and return once the room's present state is
        known. `receive` sections of each kind bound how many participants' tracks are delivered;
        `max_frame_size` is the largest picture `frames()` decodes (None: `DEFAULT_MAX_FRAME_SIZE`).

        Raises `SignallingError` when the node refuses (401/403/404/409/503), `ConnectionError` or
        `TimeoutError` when the connection does not come up, `RoomStreamError` when the room stream fails."""
        peer = await connect(
            media_url,
            meeting_id,
            recorder_token,
            receive_audio=receive,
            receive_video=receive,
            connect_timeout_s=connect_timeout_s,
        )
        source = cls(peer, max_frame_size or DEFAULT_MAX_FRAME_SIZE)
        try:
            await source._start(connect_timeout_s)
        except BaseException:
            await source.close()
            raise
        return source

    async def _start(self, timeout_s: float) -> None:
        @self.peer.pc.on("connectionstatechange")
        def changed() -> None:
            if self.peer.pc.connectionState in ("failed", "closed"):
                self._lose(f"connection {self.peer.pc.connectionState}")

        self._follower = asyncio.get_running_loop().create_task(self._follow())
        first = asyncio.ensure_future(self._first_snapshot.wait())
        try:
            await asyncio.wait({first, self._follower}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            first.cancel()
        if not self._first_snapshot.is_set():
            raise RoomStreamError(self._lost or f"no room snapshot within {timeout_s} s")

    def events(self) -> EventStream:
        state = self._state
        present: list[RoomEvent] = [ParticipantJoined(info, 0.0) for info in state.participants.values()]
        present += [TrackAdded(carried.info) for carried in state.tracks.values()]
        stream = EventStream(present, on_close=self._streams.remove)
        self._streams.append(stream)
        if self._lost is not None or self._closed:
            stream.close()
        return stream

    def participants(self) -> list[ParticipantInfo]:
        return list(self._state.participants.values())

    def tracks(self) -> list[TrackInfo]:
        return [carried.info for carried in self._state.tracks.values()]

    def packets(self, track_id: str) -> PacketReader:
        reader = PacketReader(self._carried(track_id).remote.track)
        self._readers.setdefault(track_id, []).append(reader)
        return reader

    def frames(self, track_id: str) -> FrameReader:
        reader = FrameReader(self._carried(track_id).remote.track, max_frame_size=self.max_frame_size)
        self._readers.setdefault(track_id, []).append(reader)
        return reader

    def request_keyframe(self, track_id: str) -> None:
        # A PLI on the section; the node passes it on to the track's publisher.
        self._carried(track_id).remote.track.request_keyframe()

    async def close(self) -> None:
        """Leave the meeting (POST /leave), end every stream and reader, and close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        for stream in list(self._streams):
            stream.close()
        for readers in self._readers.values():
            for reader in readers:
                reader.close()
        self._readers.clear()
        try:
            await self.peer.leave()
        except (SignallingError, OSError) as exc:
            log.info("recorder could not leave meeting %s cleanly: %s", self.peer.meeting_id, exc)

    def _carried(self, track_id: str) -> _Carried:
        carried = self._state.tracks.get(track_id)
        if carried is None:
            raise UnknownTrack(track_id)
        return carried

    async def _follow(self) -> None:
        """Read the room stream until it ends; then the meeting is lost to this source."""
        reason = "room stream ended"
        try:
            async for data in self._room_stream():
                self._apply(self._snapshot(data))
                self._first_snapshot.set()
        except (httpx.HTTPError, SignallingError, ValueError, KeyError) as exc:
            reason = f"room stream failed ({exc!r})"
        self._lose(reason)

    async def _room_stream(self) -> AsyncIterator[Any]:
        """The data of each `room` event of the node's stream, parsed."""
        peer = self.peer
        url = f"{peer.server_url}/meet/{quote(peer.meeting_id)}/peers/{quote(peer.peer_id)}/room"
        timeout = httpx.Timeout(HTTP_TIMEOUT_S, read=ROOM_STREAM_READ_TIMEOUT_S)
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            client.stream("GET", url, headers={"Authorization": f"Bearer {peer.token}"}) as response,
        ):
            if response.status_code != 200:
                body = await response.aread()
                raise SignallingError(response.status_code, _error_message(body))
            event, data = "", []
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    continue  # a keep-alive
                if line:
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    continue
                if event == "room" and data:
                    yield json.loads("\n".join(data))
                event, data = "", []

    def _snapshot(self, data: Any) -> _Snapshot:
        participants, joined_at_s = {}, {}
        for item in data["participants"]:
            info = ParticipantInfo(
                participant_id=str(item["participant_id"]),
                peer_id=str(item["peer_id"]),
                name=item["name"],
                custom_participant_id=str(item["custom_participant_id"]),
                preset_name=str(item["preset_name"]),
            )
            participants[info.peer_id] = info
            joined_at_s[info.peer_id] = float(item["joined_at_s"] or 0.0)
        tracks = {}
        for slot in data["slots"]:
            who = participants.get(slot["peer_id"])
            remote = self._sections.get(slot["mid"])
            if slot["track_id"] is None or who is None or remote is None:
                continue
            info = TrackInfo(
                track_id=str(slot["track_id"]),
                kind=str(slot["kind"]),
                codec=str(slot["codec"]),
                clock_rate=int(slot["clock_rate"]),
                participant=who,
            )
            tracks[info.track_id] = _Carried(info, remote)
        return _Snapshot(participants, joined_at_s, tracks)

    def _apply(self, new: _Snapshot) -> None:
        """Report the difference from the last snapshot, in the order a room reports it: tracks end,
        then their participants leave; participants join, then their tracks are added."""
        old, self._state = self._state, new
        now_s = time.time()
        events: list[RoomEvent] = []
        for track_id, carried in old.tracks.items():
            if new.tracks.get(track_id) != carried:
                events.append(TrackEnded(carried.info))
                for reader in self._readers.pop(track_id, []):
                    reader.close()
        gone = [info for peer_id, info in old.participants.items() if peer_id not in new.participants]
        events += [ParticipantLeft(info, now_s) for info in gone]
        events += [
            ParticipantJoined(info, new.joined_at_s[peer_id])
            for peer_id, info in new.participants.items()
            if peer_id not in old.participants
        ]
        events += [
            TrackAdded(carried.info) for track_id, carried in new.tracks.items() if old.tracks.get(track_id) != carried
        ]
        for stream in list(self._streams):
            for event in events:
                stream.push(event)

    def _lose(self, reason: str) -> None:
        """The node is gone from this source's view: everyone leaves, the streams end."""
        if self._lost is not None or self._closed:
            return
        self._lost = reason
        log.warning("recorder lost meeting %s on %s: %s", self.peer.meeting_id, self.peer.server_url, reason)
        self._apply(_Snapshot({}, {}, {}))
        for stream in list(self._streams):
            stream.close()
        if self._follower is not None and self._follower is not asyncio.current_task():
            self._follower.cancel()

    async def __aenter__(self) -> WebRTCSource:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")[:200]
