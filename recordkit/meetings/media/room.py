"""A room: the live peers of one meeting, what each publishes, and which slot forwards what to whom.

Slot rule (meetings.md §8): each receive section of a peer carries one other participant's track of
its kind, taken in join order. Published tracks are listed in the order their peers joined (connected);
a peer's empty slot takes the earliest listed track of its kind (and codec) that is not its own and not
already on another of its slots. When a publisher leaves, its slots are freed and refilled the same way,
so participants beyond the offered sections move in as others leave. Every change of who is on a slot
wakes that peer's watchers (`Peer.next_slot_change`: the join page's slot stream).

The room also tells its listeners (`RoomSource`s) what happens, and keeps the session rows in step:
`peer_joined` when a peer connects, `peer_left` when it goes (unless the caller already recorded it).

A hidden peer (a recorder joined over WebRTC) gets slots like anyone but is none of the above: it
publishes nothing, is not listed or announced, and writes no session rows, so it never starts a session
or keeps one alive. Its freed slots stay empty for `RECORDER_SWITCH_GAP_S` before the next track moves
in, so the recorder has heard that the last one ended before the next one's frames arrive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from recordkit.db.engine import Database
from recordkit.errors import DomainError
from recordkit.meetings import sessions
from recordkit.meetings.media.events import (
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    RoomEvent,
    TrackAdded,
    TrackEnded,
)
from recordkit.meetings.media.peer import Peer, Publication, Slot
from recordkit.meetings.sessions import SessionEvents

log = logging.getLogger(__name__)

Listener = Callable[[RoomEvent], None]

# A recorder learns which track a section carries from its room stream, a moment after the node switched
# it; frames that came first would be read as the previous participant's. Holding the section empty this
# long lets the stream's word arrive first (it takes milliseconds), at the cost of as much of the next track.
RECORDER_SWITCH_GAP_S = 0.5


class Room:
    """The media state of one meeting in this process."""

    def __init__(self, meeting_id: str, db: Database, session_events: SessionEvents | None) -> None:
        self.meeting_id = meeting_id
        self.peers: dict[str, Peer] = {}
        self.publications: list[Publication] = []  # in the order their peers joined
        self.listeners: list[Listener] = []
        self._db = db
        self._session_events = session_events
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchers: set[asyncio.Future[None]] = set()

    @property
    def is_idle(self) -> bool:
        """Nobody is connected or connecting, and nobody listens."""
        return not self.peers and not self.listeners

    def joined_participants(self) -> list[ParticipantInfo]:
        """The peers that finished connecting, in join order (hidden ones left out)."""
        return [peer.participant for peer in self.members()]

    def members(self) -> list[Peer]:
        """The peers that finished connecting and are not hidden, in join order."""
        return [peer for peer in self.peers.values() if peer.joined and not peer.hidden]

    async def next_change(self) -> None:
        """Return when someone next joins or leaves, or a track is published or ends."""
        waiter = asyncio.get_running_loop().create_future()
        self._watchers.add(waiter)
        try:
            await waiter
        finally:
            self._watchers.discard(waiter)

    def add(self, peer: Peer) -> None:
        """Take in a peer whose answer was made; it joins once connected."""
        self.peers[peer.id] = peer

    async def peer_connected(self, peer: Peer) -> None:
        """ICE and DTLS completed: record the join, publish the peer's tracks and fill its slots."""
        async with peer.lock:
            if peer.closing or peer.joined:
                return
            if peer.hidden:
                peer.joined, peer.joined_at_s = True, time.time()
                self._fill(peer)
                return
            try:
                await sessions.peer_joined(
                    self._db,
                    self.meeting_id,
                    peer.participant.participant_id,
                    events=self._session_events,
                    peer_id=peer.id,
                )
            except DomainError:
                # The participant was deleted while connecting: their tokens no longer stand.
                log.info("peer %s connected for a removed participant; closing it", peer.id)
                self._spawn(self.remove(peer, record_leave=False))
                return
            peer.joined, peer.joined_at_s = True, time.time()
            self._emit(ParticipantJoined(peer.participant, peer.joined_at_s))
            if peer.closing:
                return  # `remove` is waiting for the lock and will record the leave
            for publication in peer.publications:
                self.publications.append(publication)
                publication.track.on_ended(lambda publication=publication: self._unpublish(publication))
                self._emit(TrackAdded(publication.info))
            for other in self.peers.values():
                if other.joined:
                    self._fill(other)

    async def remove(self, peer: Peer, *, record_leave: bool = True) -> None:
        """Take the peer out: free its slots, close its connection, and record that it left (when it
        had joined and `record_leave`: callers that already wrote `left_at` pass False)."""
        if peer.closing:
            return
        peer.closing = True
        self.peers.pop(peer.id, None)
        for publication in list(peer.publications):
            self._unpublish(publication)
        await peer.close()
        if peer.hidden:
            return
        async with peer.lock:
            if peer.joined and record_leave:
                try:
                    await sessions.peer_left(self._db, peer.id, events=self._session_events)
                except Exception:
                    log.exception("could not record that peer %s left", peer.id)
        if peer.joined:
            self._emit(ParticipantLeft(peer.participant, time.time()))

    def _unpublish(self, publication: Publication) -> None:
        if publication not in self.publications:
            return
        self.publications.remove(publication)
        self._emit(TrackEnded(publication.info))
        for other in self.peers.values():
            freed = False
            for slot in other.slots:
                if slot.publication is publication:
                    slot.track.detach()
                    slot.publication = None
                    freed = True
                    if other.hidden:
                        slot.held = True
                        asyncio.get_running_loop().call_later(RECORDER_SWITCH_GAP_S, self._release, other, slot)
            if freed:
                if other.joined:
                    self._fill(other)
                other.slots_changed()

    def _release(self, peer: Peer, slot: Slot) -> None:
        """A hidden peer's held slot may take a track again."""
        slot.held = False
        if peer.joined and not peer.closing:
            self._fill(peer)

    def _fill(self, peer: Peer) -> None:
        """Give each empty slot of the peer the earliest published track it may carry."""
        shown = {slot.publication for slot in peer.slots if slot.publication is not None}
        for slot in peer.slots:
            if slot.publication is not None or slot.held:
                continue
            for publication in self.publications:
                if (
                    publication.peer is not peer
                    and publication not in shown
                    and publication.info.kind == slot.kind
                    and publication.info.codec.lower() == slot.codec.lower()
                    and not publication.track.ended
                ):
                    slot.publication = publication
                    slot.track.attach(publication.track)
                    shown.add(publication)
                    peer.slots_changed()
                    break

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    def _emit(self, event: RoomEvent) -> None:
        for listener in list(self.listeners):
            listener(event)
        for waiter in self._watchers:
            if not waiter.done():
                waiter.set_result(None)
        self._watchers.clear()
