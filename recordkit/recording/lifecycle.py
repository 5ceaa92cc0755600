"""The recording state machine (recordings.md §7) as a pure function: (status, event) → new status."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    INVOKED = "INVOKED"
    RECORDING = "RECORDING"
    PAUSED = "PAUSED"
    UPLOADING = "UPLOADING"
    UPLOADED = "UPLOADED"
    ERRORED = "ERRORED"


class Kind(StrEnum):
    COMPOSITE = "COMPOSITE"
    TRACK = "TRACK"


class Event(StrEnum):
    """Everything that can move a recording: the three API actions, then what recordkit does itself."""

    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    CAPTURE_STARTED = "capture_started"
    CAPTURE_ENDED = "capture_ended"
    CAPTURE_FAILED = "capture_failed"
    INVOKED_TIMEOUT = "invoked_timeout"
    UPLOAD_SUCCEEDED = "upload_succeeded"
    UPLOAD_FAILED = "upload_failed"


API_ACTIONS = (Event.PAUSE, Event.RESUME, Event.STOP)
ACTIVE = frozenset({Status.INVOKED, Status.RECORDING, Status.PAUSED})
CAPTURING = frozenset({Status.RECORDING, Status.PAUSED})
TERMINAL = frozenset({Status.UPLOADED, Status.ERRORED})


class IllegalTransition(Exception):
    """The event is not allowed in the current state."""

    def __init__(self, status: Status, event: Event) -> None:
        super().__init__(f"{event} not allowed in {status}")
        self.status = status
        self.event = event


class TrackCannotPause(IllegalTransition):
    """Pause and resume never apply to track recordings, whatever their state."""


_COMPOSITE: dict[tuple[Status, Event], Status] = {
    (Status.INVOKED, Event.STOP): Status.ERRORED,
    (Status.RECORDING, Event.PAUSE): Status.PAUSED,
    (Status.RECORDING, Event.STOP): Status.UPLOADING,
    (Status.PAUSED, Event.RESUME): Status.RECORDING,
    (Status.PAUSED, Event.STOP): Status.UPLOADING,
    (Status.INVOKED, Event.CAPTURE_STARTED): Status.RECORDING,
    (Status.RECORDING, Event.CAPTURE_ENDED): Status.UPLOADING,
    (Status.PAUSED, Event.CAPTURE_ENDED): Status.UPLOADING,
    (Status.INVOKED, Event.CAPTURE_FAILED): Status.ERRORED,
    (Status.INVOKED, Event.INVOKED_TIMEOUT): Status.ERRORED,
    (Status.UPLOADING, Event.UPLOAD_SUCCEEDED): Status.UPLOADED,
    (Status.UPLOADING, Event.UPLOAD_FAILED): Status.ERRORED,
}


def next_status(status: Status, event: Event, kind: Kind = Kind.COMPOSITE, captured_media: bool = True) -> Status:
    """The status a recording moves to when `event` happens, or IllegalTransition.

    `captured_media` matters for track recordings only: one that captured no audio at all ends
    ERRORED instead of UPLOADING when its capture ends (§7.4).
    """
    if kind is Kind.TRACK:
        if event in (Event.PAUSE, Event.RESUME):
            raise TrackCannotPause(status, event)
        if status is Status.PAUSED:
            raise IllegalTransition(status, event)
    target = _COMPOSITE.get((status, event))
    if target is None:
        raise IllegalTransition(status, event)
    if kind is Kind.TRACK and target is Status.UPLOADING and not captured_media:
        return Status.ERRORED
    return target
