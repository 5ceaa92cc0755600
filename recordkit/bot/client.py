"""A Python participant: joins a meeting through the signalling routes of meetings.md §8.

    async with join(server_url, meeting_id, token, audio=track, video=track,
                    receive_audio=2, receive_video=2) as peer:
        remote = await peer.wait_for_remote("video")
        async with remote.frames() as frames:
            async for timed in frames:
                ...  # timed.frame (av.VideoFrame), timed.pts, timed.time_base, timed.wall_time_s

One offer per connection, no trickle ICE: every candidate is gathered before the offer is posted.
Any aiortc `MediaStreamTrack` publishes (a track returning `av.Packet`s is sent without encoding).
Each receive section becomes a `RemoteTrack` whose frames are handed out encoded (`packets()`) or
decoded on demand (`frames()`), with the same timing as the server's (`meetings.media.timing`); which
participant is on it comes from the server's slots route (`refresh_slots`). Importable, so one test
process can run many of these at once.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import SessionDescription

from recordkit.meetings.media.ice import IcePolicy, apply_ice_policy, is_loopback
from recordkit.meetings.media.reading import FrameReader, PacketReader
from recordkit.meetings.media.receiving import ReceivedTrack
from recordkit.meetings.media.timing import SenderClock

HTTP_TIMEOUT_S = 10.0


class SignallingError(Exception):
    """The server refused a signalling call; `status` and `message` are its answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class SlotInfo:
    """Whose track a receive section carries, as the server's slots route says."""

    participant_id: str
    peer_id: str
    name: str | None
    track_id: str


@dataclass(eq=False)
class RemoteTrack:
    """One receive section: the track the server forwards on it, and (once refreshed) whose it is."""

    mid: str
    kind: str
    track: ReceivedTrack
    slot: SlotInfo | None = None
    # When the frame `recv()` returned last was sent (Unix seconds, this machine's clock).
    last_wall_time_s: float | None = None
    _reader: FrameReader | None = field(default=None, repr=False)

    async def recv(self) -> av.VideoFrame | av.AudioFrame:
        """The next decoded frame, like an aiortc track's `recv()`: decoding starts with the first call
        and goes on until `close()`. Raises `MediaStreamError` when the track ended."""
        if self._reader is None:
            self._reader = self.frames()
        timed = await self._reader.next()
        if timed is None:
            raise MediaStreamError
        self.last_wall_time_s = timed.wall_time_s
        return timed.frame

    def close(self) -> None:
        """Stop the decoding `recv()` started."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def frames(self) -> FrameReader:
        """Decoded frames from now on (decoding runs only while the reader is open)."""
        return FrameReader(self.track)

    def packets(self) -> PacketReader:
        """Encoded frames from now on, exactly as forwarded."""
        return PacketReader(self.track)

    @property
    def frames_received(self) -> int:
        return self.track.frames_received


@dataclass(eq=False)
class JoinedPeer:
    """A joined connection: its id, the remote tracks, and the calls that go with it."""

    server_url: str
    meeting_id: str
    token: str
    peer_id: str
    pc: RTCPeerConnection
    remote_tracks: list[RemoteTrack] = field(default_factory=list)
    offer_posted_s: float = 0.0  # time.time() when the offer was sent
    left: bool = False

    def remote(self, kind: str, participant_id: str | None = None) -> RemoteTrack | None:
        """The first receive section of `kind` carrying someone (that participant, if given)."""
        for remote in self.remote_tracks:
            if remote.kind == kind and remote.slot is not None:
                if participant_id is None or remote.slot.participant_id == participant_id:
                    return remote
        return None

    async def refresh_slots(self) -> list[RemoteTrack]:
        """Ask the server who is on each receive section and update `slot` of every remote track."""
        data = await _call(self.server_url, "GET", self._path(f"peers/{quote(self.peer_id)}/slots"), self.token)
        by_mid = {item["mid"]: item for item in data["slots"]}
        for remote in self.remote_tracks:
            item = by_mid.get(remote.mid)
            remote.slot = (
                SlotInfo(item["participant_id"], item["peer_id"], item["name"], item["track_id"])
                if item is not None and item["participant_id"] is not None
                else None
            )
        return self.remote_tracks

    async def wait_for_remote(
        self, kind: str, participant_id: str | None = None, timeout_s: float = 10.0, poll_s: float = 0.1
    ) -> RemoteTrack:
        """Poll the slots until a receive section of `kind` carries someone (that participant)."""
        deadline = time.monotonic() + timeout_s
        while True:
            await self.refresh_slots()
            remote = self.remote(kind, participant_id)
            if remote is not None:
                return remote
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {kind} track from {participant_id or 'anyone'} within {timeout_s} s")
            await asyncio.sleep(poll_s)

    async def leave(self) -> str | None:
        """Leave (POST /leave) and close the connection; returns `left_at`. Safe to call twice."""
        left_at = None
        if not self.left:
            self.left = True
            try:
                data = await _call(self.server_url, "POST", self._path("leave"), self.token, {"peer_id": self.peer_id})
                left_at = data["left_at"]
            finally:
                await self.pc.close()
        return left_at

    def _path(self, tail: str) -> str:
        return f"/meet/{quote(self.meeting_id)}/{tail}"


@asynccontextmanager
async def join(
    server_url: str,
    meeting_id: str,
    token: str,
    *,
    audio: MediaStreamTrack | None = None,
    video: MediaStreamTrack | None = None,
    receive_audio: int = 0,
    receive_video: int = 0,
    ice: IcePolicy | None = None,
    connect_timeout_s: float = 10.0,
) -> AsyncIterator[JoinedPeer]:
    """Join the meeting, wait until connected, and leave on exit. See the module docstring."""
    peer = await connect(
        server_url,
        meeting_id,
        token,
        audio=audio,
        video=video,
        receive_audio=receive_audio,
        receive_video=receive_video,
        ice=ice,
        connect_timeout_s=connect_timeout_s,
    )
    try:
        yield peer
    finally:
        try:
            await peer.leave()
        except (SignallingError, OSError):
            pass  # the server is gone or already dropped us; the connection is closed either way


async def connect(
    server_url: str,
    meeting_id: str,
    token: str,
    *,
    audio: MediaStreamTrack | None = None,
    video: MediaStreamTrack | None = None,
    receive_audio: int = 0,
    receive_video: int = 0,
    ice: IcePolicy | None = None,
    connect_timeout_s: float = 10.0,
) -> JoinedPeer:
    """`join` without the context manager: the caller must `leave()`."""
    server_url = server_url.rstrip("/")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    try:
        for track in (audio, video):
            if track is not None:
                pc.addTransceiver(track, direction="sendonly")
        receiving: list[RTCRtpTransceiver] = []
        for kind, count in (("audio", receive_audio), ("video", receive_video)):
            receiving += [pc.addTransceiver(kind, direction="recvonly") for _ in range(count)]
        apply_ice_policy(pc, ice or default_ice_policy(server_url))
        connected = _connected_event(pc)
        await pc.setLocalDescription(await pc.createOffer())  # gathers every candidate first
        posted_s = time.time()
        data = await _call(
            server_url,
            "POST",
            f"/meet/{quote(meeting_id)}/offer",
            token,
            {"type": "offer", "sdp": pc.localDescription.sdp},
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="answer"))
        # Tap the receivers now: media cannot flow before the connection is up.
        peer = JoinedPeer(server_url, meeting_id, token, data["peer_id"], pc, offer_posted_s=posted_s)
        peer.remote_tracks = _remote_tracks(data["sdp"], receiving)
        await asyncio.wait_for(connected.wait(), connect_timeout_s)
        if pc.connectionState != "connected":
            raise ConnectionError(f"connection {pc.connectionState}")
        return peer
    except BaseException:
        await pc.close()
        raise


def default_ice_policy(server_url: str) -> IcePolicy:
    """Loopback only when the server is on loopback (tests); otherwise every interface, like aiortc."""
    host = urlsplit(server_url).hostname or ""
    return IcePolicy(bind_host="127.0.0.1" if is_loopback(host) else None)


def _remote_tracks(answer_sdp: str, receiving: list[RTCRtpTransceiver]) -> list[RemoteTrack]:
    description = SessionDescription.parse(answer_sdp)
    clock = SenderClock()  # one sender (the server) for every track of this connection
    remotes = []
    for transceiver in receiving:
        media = next(m for m in description.media if m.rtp.muxId == transceiver.mid)
        if media.direction not in ("sendonly", "sendrecv") or not media.rtp.codecs:
            continue
        ssrc = media.ssrc[0].ssrc if media.ssrc else None
        track = ReceivedTrack(transceiver.receiver, media.rtp.codecs[0], clock, ssrc)
        remotes.append(RemoteTrack(mid=str(transceiver.mid), kind=transceiver.kind, track=track))
    return remotes


def _connected_event(pc: RTCPeerConnection) -> asyncio.Event:
    done = asyncio.Event()

    @pc.on("connectionstatechange")
    def changed() -> None:
        if pc.connectionState in ("connected", "failed", "closed"):
            done.set()

    return done


async def _call(server_url: str, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
    """One signalling call; returns the envelope's `data` or raises SignallingError."""
    request = urllib.request.Request(
        server_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    def send() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    # urllib blocks; a thread keeps the event loop (and everyone's media) running meanwhile.
    status, raw = await asyncio.to_thread(send)
    try:
        envelope = json.loads(raw)
    except ValueError:
        raise SignallingError(status, raw.decode(errors="replace")[:200]) from None
    if status != 200 or not envelope.get("success"):
        error = envelope.get("error") or {}
        raise SignallingError(status, str(error.get("message", "request failed")))
    return envelope["data"]
