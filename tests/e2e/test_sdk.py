"""The official Cloudflare SDK, unchanged, against a real `recordkit serve` (issue 3, acceptance 1)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import cloudflare
import pytest
from cloudflare import Cloudflare

from recordkit.db.engine import Database
from recordkit.meetings.sessions import peer_joined
from tests.helpers import ACCOUNT_ID, API_TOKEN
from tests.support.server import Served


@pytest.fixture(scope="module")
def client(served: Served) -> Cloudflare:
    return Cloudflare(api_token=API_TOKEN, base_url=f"{served.base_url}/client/v4", max_retries=0)


def open_session(served: Served, meeting_id: str, participant_id: str) -> None:
    """Join a participant the way the media plane will, through the sessions service."""
    url = served.database_url or f"sqlite+aiosqlite:///{served.data_dir / 'recordkit.db'}"

    async def join() -> None:
        db = Database(url)
        try:
            await peer_joined(db, meeting_id, participant_id)
        finally:
            await db.close()

    asyncio.run(join())


def test_sdk_drives_every_recordings_method(client: Cloudflare, served: Served) -> None:
    kit = client.realtime_kit
    app = kit.apps.post(account_id=ACCOUNT_ID, name="SDK app").data.app
    assert app.id and app.name == "SDK app"
    meeting = kit.meetings.create(app.id, account_id=ACCOUNT_ID, title="SDK meeting").data
    assert meeting.title == "SDK meeting"
    participant = kit.meetings.add_participant(
        meeting.id, account_id=ACCOUNT_ID, app_id=app.id, custom_participant_id="sdk-user",
        preset_name="group_call_host", name="Ada",
    ).data  # fmt: skip
    assert participant.token and participant.preset_name == "group_call_host"

    recordings = kit.recordings
    started = recordings.start_recordings(app.id, account_id=ACCOUNT_ID, meeting_id=meeting.id).data
    assert started.status == "INVOKED" and started.start_reason.reason == "API_CALL"
    assert started.output_file_name.endswith(".mp4")

    one = recordings.get_one_recording(started.id, account_id=ACCOUNT_ID, app_id=app.id).data
    assert one.id == started.id and one.invoked_time == started.invoked_time

    active = recordings.get_active_recordings(meeting.id, account_id=ACCOUNT_ID, app_id=app.id).data
    assert active.id == started.id

    listed = recordings.get_recordings(app.id, account_id=ACCOUNT_ID, status=["INVOKED", "RECORDING"], per_page=10)
    assert [item.id for item in listed.data] == [started.id]
    assert listed.data[0].meeting.id == meeting.id
    assert listed.paging.total_count == 1

    def status_of(recording_id: str) -> Any:
        return recordings.get_one_recording(recording_id, account_id=ACCOUNT_ID, app_id=app.id).data

    deadline = time.monotonic() + 10
    while status_of(started.id).status == "INVOKED" and time.monotonic() < deadline:
        time.sleep(0.05)
    act = recordings.pause_resume_stop_recording
    assert act(started.id, account_id=ACCOUNT_ID, app_id=app.id, action="pause").data.status == "PAUSED"
    with pytest.raises(cloudflare.ConflictError) as conflict:
        act(started.id, account_id=ACCOUNT_ID, app_id=app.id, action="pause")
    assert conflict.value.status_code == 409
    assert act(started.id, account_id=ACCOUNT_ID, app_id=app.id, action="resume").data.status == "RECORDING"

    with pytest.raises(cloudflare.NotFoundError):
        recordings.start_track_recording(app.id, account_id=ACCOUNT_ID, meeting_id=meeting.id)
    open_session(served, meeting.id, participant.id)
    track = recordings.start_track_recording(
        app.id, account_id=ACCOUNT_ID, meeting_id=meeting.id,
        layers={"default": {"file_name_prefix": "podcast"}},
    ).data  # fmt: skip
    assert track.recording.status == "INVOKED" and track.recording.id

    stopped = act(started.id, account_id=ACCOUNT_ID, app_id=app.id, action="stop").data
    assert stopped.status == "UPLOADING" and stopped.file_size and stopped.file_size > 0
    assert stopped.stop_reason.reason == "API_CALL" and stopped.stop_reason.caller.type == "ORGANIZATION"
    deadline = time.monotonic() + 10
    while status_of(started.id).status == "UPLOADING" and time.monotonic() < deadline:
        time.sleep(0.05)
    uploaded = status_of(started.id)
    assert uploaded.status == "UPLOADED" and uploaded.download_url and uploaded.download_url_expiry


def test_sdk_maps_errors(client: Cloudflare) -> None:
    kit = client.realtime_kit
    app = kit.apps.post(account_id=ACCOUNT_ID, name="errors").data.app
    with pytest.raises(cloudflare.BadRequestError):
        kit.recordings.start_recordings(app.id, account_id=ACCOUNT_ID, meeting_id="not-a-uuid")
    with pytest.raises(cloudflare.NotFoundError):
        kit.recordings.get_one_recording("missing", account_id=ACCOUNT_ID, app_id=app.id)
    with pytest.raises(cloudflare.PermissionDeniedError):
        kit.recordings.get_one_recording("missing", account_id="0" * 32, app_id=app.id)
    stranger = Cloudflare(api_token="wrong", base_url=str(client.base_url), max_retries=0)
    with pytest.raises(cloudflare.AuthenticationError):
        stranger.realtime_kit.recordings.get_recordings(app.id, account_id=ACCOUNT_ID)


def test_serve_keeps_secrets_out_of_its_log(served: Served, client: Cloudflare) -> None:
    kit = client.realtime_kit
    app = kit.apps.post(account_id=ACCOUNT_ID, name="secrets").data.app
    meeting = kit.meetings.create(app.id, account_id=ACCOUNT_ID).data
    secret = "SFTP-PASSWORD-never-in-logs"
    storage = {"type": "sftp", "host": "127.0.0.1", "username": "u", "auth_method": "PASSWORD", "password": secret}
    started = kit.recordings.start_recordings(
        app.id, account_id=ACCOUNT_ID, meeting_id=meeting.id, storage_config=storage
    )
    assert started.data.storage_config is not None
    raw = client.get(f"/accounts/{ACCOUNT_ID}/realtime/kit/{app.id}/recordings/{started.data.id}", cast_to=object)
    assert secret not in str(raw) and "password" not in str(raw)
    assert secret not in served.log() and str(Path(served.log_path)).endswith(".log")
