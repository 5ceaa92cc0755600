"""The media plane of this process: its rooms, how peers get in and out, and their timers.

A peer joins when its connection reaches "connected" and leaves on `/leave`, when the connection fails
or closes, or when nothing arrives from it for `silence_timeout_s` (meetings.md §8). A peer that never
connects is dropped after `join_timeout_s` without ever joining.

A recorder on another process joins as a hidden peer (`join_recorder`): it counts against `max_peers`
(it costs the same forwarding) but not against a participant's connection limit, and the silence
timeout holds it like anyone — `Liveness` hears its RTCP receiver reports and, alone in an empty
meeting, its ICE consent checks (every 4–6 s, well inside the 15 s default), so receiving alone keeps
it in (docs/recorder-join.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recordkit.clock import utcnow
from recordkit.config import MediaSettings
from recordkit.db.engine import Database
from recordkit.db.models import Participant, SessionPeer
from recordkit.errors import UnknownId
from recordkit.meetings import sessions
from recordkit.meetings.media.events import ParticipantInfo
from recordkit.meetings.media.ice import IcePolicy, NoMediaPort
from recordkit.meetings.media.offer import Offer, OfferRejected
from recordkit.meetings.media.peer import Peer, Slot
from recordkit.meetings.media.room import Room
from recordkit.meetings.media.source import RoomSource
from recordkit.meetings.sessions import SessionEvents

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.5
REMEMBERED_LEAVES = 10_000


class AtCapacity(Exception):
    """No room for another peer (peer limit reached, or no free media port)."""


class TooManyConnections(Exception):
    """The participant already holds as many connections as one participant may."""

    def __init__(self, participant_id: str, limit: int) -> None:
        super().__init__(f"Participant {participant_id} already has {limit} connections")


@dataclass(frozen=True)
class _Left:
    meeting_id: str
    participant_id: str
    left_at: datetime | None  # None: it had joined, and its session row has the time


class MediaPlane:
    """Every room of this process; the one object the API and the recorder talk to about media."""

    def __init__(self, db: Database, session_events: SessionEvents | None, settings: MediaSettings) -> None:
        self.settings = settings
        self.rooms: dict[str, Room] = {}
        self.ice = IcePolicy(
            bind_host=settings.bind_host or None,
            advertised_host=settings.advertised_host,
            port_min=settings.udp_port_min,
            port_max=settings.udp_port_max,
        )
        self._db = db
        self._session_events = session_events
        self._left: OrderedDict[str, _Left] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        # Peers between the capacity check and their room, by participant: their slots are taken before
        # anything is awaited.
        self._joining: Counter[str] = Counter()

    @property
    def peer_count(self) -> int:
        return sum(len(room.peers) for room in self.rooms.values())

    def room(self, meeting_id: str) -> Room:
        """The meeting's room, made on first use."""
        room = self.rooms.get(meeting_id)
        if room is None:
            room = self.rooms[meeting_id] = Room(meeting_id, self._db, self._session_events)
        return room

    async def join(self, meeting_id: str, participant: Participant, offer: Offer) -> tuple[str, str]:
        """Answer a participant's checked offer; returns the new peer's id and the SDP answer.

        Raises AtCapacity (503), TooManyConnections (409), or OfferRejected (400) when aiortc cannot apply
        the offer after all.
        """
        room = self.rooms.get(meeting_id)
        connected = room.peers.values() if room is not None else ()
        own = sum(peer.participant.participant_id == participant.id for peer in connected)
        held = own + self._joining[participant.id]
        if held >= self.settings.max_peers_per_participant:
            raise TooManyConnections(participant.id, self.settings.max_peers_per_participant)
        info = ParticipantInfo(
            participant_id=participant.id,
            peer_id=str(uuid.uuid4()),
            name=participant.name,
            custom_participant_id=participant.custom_participant_id,
            preset_name=participant.preset_name,
        )
        return await self._admit(meeting_id, info, offer, hidden=False)

    async def join_recorder(self, meeting_id: str, recording_id: str, offer: Offer) -> tuple[str, str]:
        """Answer a recorder's checked, receive-only offer with a hidden peer (see the module docstring);
        its `participant_id` is the recording's id. Raises AtCapacity or OfferRejected like `join`."""
        info = ParticipantInfo(
            participant_id=recording_id,
            peer_id=str(uuid.uuid4()),
            name=None,
            custom_participant_id="",
            preset_name="",
        )
        return await self._admit(meeting_id, info, offer, hidden=True)

    async def _admit(self, meeting_id: str, info: ParticipantInfo, offer: Offer, *, hidden: bool) -> tuple[str, str]:
        joining = self._joining.total()
        if self.peer_count + joining >= self.settings.max_peers:
            raise AtCapacity(f"{self.peer_count} peers connected, {joining} joining")
        self._joining[info.participant_id] += 1
        try:
            return await self._answer(meeting_id, info, offer, hidden)
        finally:
            self._joining[info.participant_id] -= 1
            if not self._joining[info.participant_id]:
                del self._joining[info.participant_id]

    async def _answer(self, meeting_id: str, info: ParticipantInfo, offer: Offer, hidden: bool) -> tuple[str, str]:
        peer = Peer(info, meeting_id, hidden=hidden)
        try:
            answer = await peer.answer(offer, self.ice)
        except NoMediaPort as exc:
            await peer.close()
            raise AtCapacity(str(exc)) from exc
        except Exception as exc:
            await peer.close()
            raise OfferRejected(f"could not be applied ({exc})") from exc
        room = self.room(meeting_id)
        room.add(peer)
        peer.on_connection_state(lambda state: self._on_state(room, peer, state))
        self._spawn(self._watch(room, peer))
        return info.peer_id, answer

    def peer(self, meeting_id: str, participant_id: str, peer_id: str, *, hidden: bool = False) -> Peer:
        """A live peer of this participant (with `hidden`: of this recording) in this meeting, or 404
        `No peer found with id …`."""
        room = self.rooms.get(meeting_id)
        peer = room.peers.get(peer_id) if room is not None else None
        if peer is None or peer.participant.participant_id != participant_id or peer.hidden != hidden:
            raise UnknownId("peer", peer_id)
        return peer

    def slots(self, meeting_id: str, participant_id: str, peer_id: str) -> list[Slot]:
        """The live peer's receive slots in offer order (404 when it is not live)."""
        return list(self.peer(meeting_id, participant_id, peer_id).slots)

    async def leave(self, meeting_id: str, participant_id: str, peer_id: str) -> datetime:
        """The peer leaves (if it had not yet); returns its `left_at`. 404 for a peer that is not this
        participant's in this meeting."""
        room = self.rooms.get(meeting_id)
        live = room.peers.get(peer_id) if room is not None else None
        if room is not None and live is not None and live.participant.participant_id == participant_id:
            await self._remove(room, live, record_leave=True)
        gone = self._left.get(peer_id)
        if gone is not None and (gone.meeting_id, gone.participant_id) == (meeting_id, participant_id):
            if gone.left_at is not None:
                return gone.left_at
        async with self._db.read() as session:
            row = await session.get(SessionPeer, peer_id.lower())
        if row is None or row.meeting_id != meeting_id or row.participant_id != participant_id:
            raise UnknownId("peer", peer_id)
        if row.left_at is None:
            # Connected as far as the table knows, but not in this process (it restarted): it left.
            row = await sessions.peer_left(self._db, row.id, events=self._session_events)
        assert row.left_at is not None
        return row.left_at

    async def disconnect_participant(self, meeting_id: str, participant_id: str) -> None:
        """Close every peer of a participant whose session rows the caller already closed (DELETE)."""
        room = self.rooms.get(meeting_id)
        if room is None:
            return
        peers = [peer for peer in room.peers.values() if peer.participant.participant_id == participant_id]
        await asyncio.gather(*(self._remove(room, peer, record_leave=False) for peer in peers))

    async def disconnect_meeting(self, meeting_id: str) -> None:
        """Close every participant's peer of a meeting whose session the caller already ended (kick-all).
        Recorders stay, as a `RoomSource` would: whether a recording goes on is the recording's rule."""
        room = self.rooms.get(meeting_id)
        if room is None:
            return
        kicked = [peer for peer in room.peers.values() if not peer.hidden]
        await asyncio.gather(*(self._remove(room, peer, record_leave=False) for peer in kicked))

    def open_source(self, meeting_id: str) -> RoomSource:
        """A `MediaSource` over the meeting's room (the recorder's in-process view); close it when done."""
        room = self.room(meeting_id)
        return RoomSource(room, self.settings.max_frame_size, on_close=lambda: self._forget_if_idle(room))

    async def close(self) -> None:
        """Disconnect everyone (recording their leave) and stop the timers; for shutdown."""
        for room in list(self.rooms.values()):
            await asyncio.gather(*(self._remove(room, peer, record_leave=True) for peer in list(room.peers.values())))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_state(self, room: Room, peer: Peer, state: str) -> None:
        if state == "connected":
            self._spawn(room.peer_connected(peer))
        elif state in ("failed", "closed"):
            self._spawn(self._remove(room, peer, record_leave=True))

    async def _watch(self, room: Room, peer: Peer) -> None:
        started = time.monotonic()
        while not peer.closing:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if not peer.joined and time.monotonic() - started > self.settings.join_timeout_s:
                log.info("peer %s did not connect within %.0f s; dropped", peer.id, self.settings.join_timeout_s)
                await self._remove(room, peer, record_leave=True)
            elif peer.joined and peer.liveness is not None:
                if peer.liveness.silent_for_s() > self.settings.silence_timeout_s:
                    log.info("peer %s silent for %.0f s; it left", peer.id, self.settings.silence_timeout_s)
                    await self._remove(room, peer, record_leave=True)

    async def _remove(self, room: Room, peer: Peer, *, record_leave: bool) -> None:
        if peer.closing:
            return
        await room.remove(peer, record_leave=record_leave)
        # A hidden peer has no session row to read its `left_at` from later: remember it here.
        in_session = peer.joined and not peer.hidden
        self._left[peer.id] = _Left(room.meeting_id, peer.participant.participant_id, None if in_session else utcnow())
        while len(self._left) > REMEMBERED_LEAVES:
            self._left.popitem(last=False)
        self._forget_if_idle(room)

    def _forget_if_idle(self, room: Room) -> None:
        if room.is_idle and self.rooms.get(room.meeting_id) is room:
            del self.rooms[room.meeting_id]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)
