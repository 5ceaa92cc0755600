"""What happens in a room, as a `MediaSource` reports it: who joined or left, which tracks came or went."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParticipantInfo:
    """One connected peer of a participant (a participant with two tabs open is two of these)."""

    participant_id: str
    peer_id: str
    name: str | None
    custom_participant_id: str
    preset_name: str


@dataclass(frozen=True)
class TrackInfo:
    """One published track: `kind` is "audio" or "video", `codec` a MIME type such as "video/VP8",
    `clock_rate` the rate its `pts` count in (48000 for Opus, 90000 for video)."""

    track_id: str
    kind: str
    codec: str
    clock_rate: int
    participant: ParticipantInfo


@dataclass(frozen=True)
class ParticipantJoined:
    participant: ParticipantInfo
    at_s: float  # Unix seconds


@dataclass(frozen=True)
class ParticipantLeft:
    participant: ParticipantInfo
    at_s: float


@dataclass(frozen=True)
class TrackAdded:
    track: TrackInfo


@dataclass(frozen=True)
class TrackEnded:
    track: TrackInfo


RoomEvent = ParticipantJoined | ParticipantLeft | TrackAdded | TrackEnded
