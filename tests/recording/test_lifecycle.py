"""The whole state-machine table of recordings.md §7.2/§7.4, cell by cell."""

from __future__ import annotations

import itertools

import pytest

from recordkit.recording.lifecycle import (
    Event,
    IllegalTransition,
    Kind,
    Status,
    TrackCannotPause,
    next_status,
)

S, E = Status, Event

COMPOSITE_ALLOWED = {
    (S.INVOKED, E.STOP): S.ERRORED,
    (S.RECORDING, E.PAUSE): S.PAUSED,
    (S.RECORDING, E.STOP): S.UPLOADING,
    (S.PAUSED, E.RESUME): S.RECORDING,
    (S.PAUSED, E.STOP): S.UPLOADING,
    (S.INVOKED, E.CAPTURE_STARTED): S.RECORDING,
    (S.RECORDING, E.CAPTURE_ENDED): S.UPLOADING,
    (S.PAUSED, E.CAPTURE_ENDED): S.UPLOADING,
    (S.INVOKED, E.CAPTURE_FAILED): S.ERRORED,
    (S.INVOKED, E.INVOKED_TIMEOUT): S.ERRORED,
    (S.UPLOADING, E.UPLOAD_SUCCEEDED): S.UPLOADED,
    (S.UPLOADING, E.UPLOAD_FAILED): S.ERRORED,
}


@pytest.mark.parametrize(("status", "event"), list(itertools.product(Status, Event)))
def test_composite_table(status: Status, event: Event) -> None:
    expected = COMPOSITE_ALLOWED.get((status, event))
    if expected is None:
        with pytest.raises(IllegalTransition) as caught:
            next_status(status, event)
        assert not isinstance(caught.value, TrackCannotPause)
        assert (caught.value.status, caught.value.event) == (status, event)
    else:
        assert next_status(status, event) is expected


@pytest.mark.parametrize(("status", "event"), list(itertools.product(Status, Event)))
def test_track_table(status: Status, event: Event) -> None:
    if event in (E.PAUSE, E.RESUME):
        with pytest.raises(TrackCannotPause):
            next_status(status, event, Kind.TRACK)
        return
    expected = None if status is S.PAUSED else COMPOSITE_ALLOWED.get((status, event))
    if expected is None:
        with pytest.raises(IllegalTransition):
            next_status(status, event, Kind.TRACK)
    else:
        assert next_status(status, event, Kind.TRACK) is expected


@pytest.mark.parametrize("event", [E.STOP, E.CAPTURE_ENDED])
def test_track_without_audio_ends_errored(event: Event) -> None:
    assert next_status(S.RECORDING, event, Kind.TRACK, captured_media=False) is S.ERRORED
    assert next_status(S.RECORDING, event, Kind.TRACK, captured_media=True) is S.UPLOADING


def test_every_terminal_state_refuses_every_event() -> None:
    for status, event in itertools.product((S.UPLOADED, S.ERRORED), Event):
        with pytest.raises(IllegalTransition):
            next_status(status, event)
