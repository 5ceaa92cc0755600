"""One participant's connection to the media plane: its peer connection, published tracks and slots.

`Peer.answer` builds the server side of the connection from a checked offer (`offer.py`): one
transceiver per audio/video section, in the offer's order, so aiortc pairs them section by section.
Sections the server receives get a `ReceivedTrack` tap (never decoded); sections the client receives
get a `SlotTrack` on the sender from the start (filled later by the room). The room decides what
happens when the connection comes up or goes away; the peer only reports it.

A hidden peer is a recorder's connection (joined with a recorder token): it only receives, and the room
never lists it, counts it as present or forwards it to anyone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy

from recordkit.meetings.media.events import ParticipantInfo, TrackInfo
from recordkit.meetings.media.forwarding import SlotTrack, relay_keyframe_requests
from recordkit.meetings.media.ice import IcePolicy, Liveness, apply_ice_policy
from recordkit.meetings.media.offer import Offer, codec_preferences
from recordkit.meetings.media.receiving import ReceivedTrack
from recordkit.meetings.media.timing import SenderClock

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Publication:
    """A track a participant publishes into the room."""

    info: TrackInfo
    track: ReceivedTrack
    peer: Peer


@dataclass(eq=False)
class Slot:
    """A receive section of a peer: the track forwarded on it, and whose it is."""

    mid: str
    kind: str
    codec: str
    track: SlotTrack
    publication: Publication | None = None
    held: bool = False  # freed on a hidden peer, and kept empty a moment (`room.RECORDER_SWITCH_GAP_S`)


@dataclass(eq=False)
class Peer:
    """The server side of one participant connection."""

    participant: ParticipantInfo
    meeting_id: str
    pc: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
    )
    publications: list[Publication] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    liveness: Liveness | None = None
    hidden: bool = False  # a recorder's peer: never listed, counted or forwarded
    joined: bool = False  # connected (and, unless hidden, recorded in the session)
    joined_at_s: float | None = None  # Unix seconds, when it joined
    closing: bool = False
    # Serialises the session writes of joining and leaving, which may race.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _slot_watchers: set[asyncio.Future[None]] = field(default_factory=set, init=False, repr=False)

    @property
    def id(self) -> str:
        return self.participant.peer_id

    def slots_changed(self) -> None:
        """A slot changed hands, or the peer is closing: wake whoever waits in `next_slot_change`."""
        for waiter in self._slot_watchers:
            if not waiter.done():
                waiter.set_result(None)
        self._slot_watchers.clear()

    async def next_slot_change(self) -> None:
        """Return when a slot next changes hands or the peer closes (at once if it is closing)."""
        if self.closing:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._slot_watchers.add(waiter)
        try:
            await waiter
        finally:
            self._slot_watchers.discard(waiter)

    async def answer(self, offer: Offer, ice: IcePolicy) -> str:
        """Apply `offer` and return the complete SDP answer (all candidates gathered)."""
        sender_clock = SenderClock()
        transceivers = []
        for section in offer.sections:
            slot_track = SlotTrack(section.kind, section.codec.clockRate) if section.send else None
            transceiver = self.pc.addTransceiver(slot_track or section.kind, direction=section.direction)
            transceiver.setCodecPreferences(codec_preferences(section.kind))
            transceivers.append(transceiver)
            if slot_track is not None:
                relay_keyframe_requests(transceiver.sender, slot_track)
                self.slots.append(Slot(section.mid, section.kind, section.codec.mimeType, slot_track))
        apply_ice_policy(self.pc, ice)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        for section, transceiver in zip(offer.sections, transceivers, strict=True):
            if section.receive:
                track = ReceivedTrack(transceiver.receiver, section.codec, sender_clock, section.media_ssrc)
                info = TrackInfo(
                    track_id=str(uuid.uuid4()),
                    kind=section.kind,
                    codec=section.codec.mimeType,
                    clock_rate=section.codec.clockRate,
                    participant=self.participant,
                )
                self.publications.append(Publication(info, track, self))
        self.liveness = Liveness(self.pc)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    def on_connection_state(self, callback: Callable[[str], None]) -> None:
        """Call `callback(state)` on every connection state change ("connected", "failed", "closed", …)."""

        @self.pc.on("connectionstatechange")
        def changed() -> None:
            callback(self.pc.connectionState)

    async def close(self) -> None:
        """Close the connection and end its slots; safe to call more than once."""
        for slot in self.slots:
            slot.publication = None
            slot.track.stop()
        self.slots_changed()
        try:
            await self.pc.close()
        except Exception:  # a half-built connection may fail to close; it is gone either way
            log.debug("closing peer %s failed", self.id, exc_info=True)
