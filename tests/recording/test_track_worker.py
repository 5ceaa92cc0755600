"""The `record_tracks` job and a track recording's session (issue 6; recordings.md §6.4, §7.4): a track recording
never outlives the session it was started in, even when that session ends before the recorder attaches."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from recordkit.clock import utcnow
from recordkit.meetings.sessions import end_session, peer_joined
from recordkit.recorder.capture import Finished
from recordkit.recorder.track import TrackRecorder
from recordkit.recording.track_worker import attached, record_tracks
from tests.helpers import Api


@pytest.fixture(scope="module")
async def app_id(api: Api) -> str:
    return await api.new_app("Track jobs")


async def invoked_track_recording(api: Api, app_id: str) -> dict[str, Any]:
    meeting = await api.new_meeting(app_id)
    participant = await api.new_participant(app_id, meeting["id"])
    await peer_joined(api.services.db, meeting["id"], participant["id"])
    data = await api.ok("POST", f"/{app_id}/recordings/track", json={"meeting_id": meeting["id"]})
    return dict(data["recording"])


async def test_a_session_that_ended_before_the_job_ran_fails_the_recording(api: Api, app_id: str) -> None:
    recording = await invoked_track_recording(api, app_id)
    await end_session(api.services.db, recording["session_id"], events=api.services.session_events)
    await record_tracks(api.services.work, recording["id"])
    done = await api.ok("GET", f"/{app_id}/recordings/{recording['id']}")
    assert done["status"] == "ERRORED" and done["stop_reason"] == {"reason": "INTERNAL_ERROR", "caller": None}


class NothingRecorded:
    """Stands in for a recorder that attached and captured nothing."""

    recording_id = ""

    async def finish(self, at_wall_s: float | None = None) -> Finished:
        return Finished(None, utcnow(), captured_media=False)


async def test_a_session_that_ended_while_the_recorder_attached_stops_it(api: Api, app_id: str) -> None:
    recording = await invoked_track_recording(api, app_id)
    # The session's end finds the recording still INVOKED, so it cannot stop it…
    await end_session(api.services.db, recording["session_id"], events=api.services.session_events)
    stand_in = NothingRecorded()
    stand_in.recording_id = recording["id"]
    # …so the recorder, once attached, finds the session gone and stops the way the session's end would have.
    recorders = api.services.recorders
    assert await recorders.claim(recording["id"]) is not None
    await attached(api.services.reports, cast(TrackRecorder, stand_in), time.time(), recorders.node_id)
    done = await api.ok("GET", f"/{app_id}/recordings/{recording['id']}")
    assert done["status"] == "ERRORED", "captured nothing"
    assert done["stop_reason"] == {"reason": "ALL_PEERS_LEFT", "caller": None} and done["started_time"] is not None
