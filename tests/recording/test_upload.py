"""From UPLOADING to a signed link (recordings.md §7.4, §10.2–§10.3), and recovery after a restart."""

from __future__ import annotations

import os
import time
from datetime import UTC, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from recordkit.clock import parse_iso8601, utcnow
from recordkit.db.models import Recording, StoreUpload
from recordkit.meetings.sessions import peer_joined
from recordkit.recorder.manifest import Manifest, ManifestFile, manifest_file_name, read_manifest, write_manifest
from recordkit.recorder.spool import spool_dir
from recordkit.recording.config import track_file_name
from recordkit.recording.delivery import DeliveryFailed
from recordkit.recording.upload import upload, upload_gave_up
from tests.helpers import Api
from tests.support.server import free_port


@pytest.fixture(scope="module")
async def app_id(api: Api) -> str:
    return await api.new_app("Uploads")


def spool_file(api: Api, recording: dict[str, Any], name: str | None = None, content: bytes = b"\x00" * 1000) -> None:
    folder = spool_dir(api.services.settings.data_dir, recording["id"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (name or recording["output_file_name"])).write_bytes(content)


async def recording_in(api: Api, app_id: str, status: str, **body: Any) -> dict[str, Any]:
    meeting = await api.new_meeting(app_id)
    data = await api.ok("POST", f"/{app_id}/recordings", json={"meeting_id": meeting["id"], **body})
    if status != "INVOKED":
        await api.services.reports.capture_started(data["id"])
    if status == "UPLOADING":
        data = await api.ok("PUT", f"/{app_id}/recordings/{data['id']}", json={"action": "stop"})
    return data


async def test_upload_moves_the_file_and_signs_a_seven_day_link(api: Api, app_id: str) -> None:
    recording = await recording_in(api, app_id, "UPLOADING")
    content = os.urandom(5000)
    spool_file(api, recording, content=content)
    before = int(time.time())
    await upload(api.services.work, recording["id"])
    done = await api.ok("GET", f"/{app_id}/recordings/{recording['id']}")
    assert done["status"] == "UPLOADED" and done["file_size"] == 5000
    assert done["audio_download_url"] is None
    expires = int(done["download_url"].split("expires=")[1].split("&")[0])
    assert before + 7 * 86400 <= expires <= int(time.time()) + 7 * 86400
    assert done["download_url_expiry"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expires)))
    downloaded = await api.client.get(done["download_url"].removeprefix("http://testserver"))
    assert downloaded.status_code == 200 and downloaded.content == content
    assert not (spool_dir(api.services.settings.data_dir, recording["id"]) / recording["output_file_name"]).exists()
    again = await api.ok("GET", f"/{app_id}/recordings/{recording['id']}")
    assert again["download_url"] == done["download_url"], "links are generated once"


async def test_a_move_cut_between_its_two_renames_is_completed(api: Api, app_id: str) -> None:
    """The process died after the spool file became `<name>.part` in the bucket and before its last rename."""
    recording = await recording_in(api, app_id, "UPLOADING")
    content = os.urandom(3000)
    target = api.services.bucket.path(recording["id"], recording["output_file_name"])
    assert target is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.with_name(target.name + ".part").write_bytes(content)
    await upload(api.services.work, recording["id"])
    done = await api.ok("GET", f"/{app_id}/recordings/{recording['id']}")
    assert done["status"] == "UPLOADED" and done["file_size"] == 3000
    downloaded = await api.client.get(done["download_url"].removeprefix("http://testserver"))
    assert downloaded.content == content
    assert sorted(path.name for path in target.parent.iterdir()) == [target.name], "no .part left"


async def test_leftover_parts_of_finished_recordings_are_removed_and_an_uploading_ones_kept(
    api: Api, app_id: str
) -> None:
    """A copy into the bucket cut short leaves `<name>.part` next to nothing; once the recording is finished
    nothing will complete it."""
    finished = await recording_in(api, app_id, "UPLOADING")
    spool_file(api, finished)
    await upload(api.services.work, finished["id"])
    uploading = await recording_in(api, app_id, "UPLOADING")
    parts = []
    for recording in (finished, uploading):
        target = api.services.bucket.path(recording["id"], recording["output_file_name"])
        assert target is not None
        target.parent.mkdir(parents=True, exist_ok=True)
        parts.append(target.with_name(target.name + ".part"))
        parts[-1].write_bytes(b"half a copy")
    assert await api.services.reconciler.remove_leftover_parts() == 1
    assert not parts[0].exists() and parts[1].exists()
    assert api.services.bucket.path(finished["id"], finished["output_file_name"]).exists(), "the file itself stays"
    await upload(api.services.work, uploading["id"])
    assert not parts[1].exists()


async def test_separate_and_audio_only_files(api: Api, app_id: str) -> None:
    both = await recording_in(api, app_id, "UPLOADING", audio_config={"codec": "MP3"})
    spool_file(api, both)
    spool_file(api, both, both["output_file_name"].replace(".mp4", ".mp3"), b"ID3")
    await upload(api.services.work, both["id"])
    done = await api.ok("GET", f"/{app_id}/recordings/{both['id']}")
    assert done["status"] == "UPLOADED" and ".mp3?" in done["audio_download_url"]
    assert (await api.client.get(done["audio_download_url"].removeprefix("http://testserver"))).content == b"ID3"

    audio_only = await recording_in(api, app_id, "UPLOADING", video_config={"export_file": False}, audio_config={})
    spool_file(api, audio_only)
    await upload(api.services.work, audio_only["id"])
    done = await api.ok("GET", f"/{app_id}/recordings/{audio_only['id']}")
    assert done["output_file_name"].endswith(".m4a") and done["audio_download_url"] == done["download_url"]


async def test_a_missing_file_errors(api: Api, app_id: str) -> None:
    lost = await recording_in(api, app_id, "UPLOADING")
    await upload(api.services.work, lost["id"])
    errored = await api.ok("GET", f"/{app_id}/recordings/{lost['id']}")
    assert errored["status"] == "ERRORED" and errored["download_url"] is None


async def test_a_store_that_keeps_failing_errors_naming_it_and_keeps_the_linked_built_in_copy(
    api: Api, app_id: str
) -> None:
    port = free_port()  # nothing listens there
    storage = {
        "type": "aws", "access_key": "AKIAEXAMPLEKEYID", "secret": "wJalrXUtnFEMI-very-secret", "bucket": "b",
        "region": "eu-west-1", "endpoint": f"http://127.0.0.1:{port}",
    }  # fmt: skip
    external = await recording_in(api, app_id, "UPLOADING", storage_config=storage)
    spool_file(api, external)
    with pytest.raises(DeliveryFailed) as failed:
        await upload(api.services.work, external["id"])
    assert f"127.0.0.1:{port}" in str(failed.value) and storage["secret"] not in str(failed.value)
    await upload_gave_up(api.services.work, external["id"], failed.value)
    errored = await api.ok("GET", f"/{app_id}/recordings/{external['id']}")
    assert errored["status"] == "ERRORED" and errored["download_url"] is not None, "the built-in copy stays"
    assert errored["stop_reason"]["reason"] == "API_CALL", "an upload failure does not rewrite stop_reason"
    downloaded = await api.client.get(errored["download_url"].removeprefix("http://testserver"))
    assert downloaded.status_code == 200
    async with api.services.db.read() as session:
        recording = await session.get(Recording, external["id"])
        rows = (await session.execute(select(StoreUpload).where(StoreUpload.recording_id == external["id"]))).all()
    assert recording is not None and recording.error_reason == str(failed.value)
    assert recording.storage_secrets is None, "a terminal recording keeps no secret"
    ((row,),) = rows
    assert (row.status, row.attempts, row.confirmed) == ("failed", 1, {})
    assert storage["secret"] not in (row.last_error or "") and storage["access_key"] not in (row.last_error or "")


async def test_restart_finishes_what_was_recording(api: Api, app_id: str) -> None:
    recording = await recording_in(api, app_id, "RECORDING")
    spool_file(api, recording, content=b"\x01" * 777)
    crashed_at = time.time() - 5
    path = spool_dir(api.services.settings.data_dir, recording["id"]) / recording["output_file_name"]
    os.utime(path, (crashed_at, crashed_at))
    waiting = await recording_in(api, app_id, "INVOKED")
    stale = await recording_in(api, app_id, "INVOKED")
    uploading = await recording_in(api, app_id, "UPLOADING")
    services = api.services
    async with services.db.write() as session:
        stale_row = await session.get(Recording, stale["id"])
        running = await session.get(Recording, recording["id"])
        assert stale_row is not None and running is not None
        stale_row.invoked_time = utcnow() - timedelta(minutes=11)
        running.started_time = utcnow() - timedelta(seconds=30)
        for rid in (waiting["id"], uploading["id"]):
            row = await session.get(Recording, rid)
            assert row is not None
            row.updated_at = utcnow() - timedelta(seconds=10)  # settled: no job on its way any more
    jobs = api.jobs
    jobs.jobs.clear()  # the crash lost every queued job
    await services.reconciler.pass_once()

    finished = await api.ok("GET", f"/{app_id}/recordings/{recording['id']}")
    assert finished["status"] == "UPLOADING" and finished["file_size"] == 777
    assert finished["stop_reason"] == {"reason": "INTERNAL_ERROR", "caller": None}
    assert finished["stopped_time"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(crashed_at)))
    assert 24 <= finished["recording_duration"] <= 26, "the file holds capture up to the crash"
    assert (await api.ok("GET", f"/{app_id}/recordings/{stale['id']}"))["status"] == "ERRORED"
    assert (await api.ok("GET", f"/{app_id}/recordings/{waiting['id']}"))["status"] == "INVOKED"
    submitted = {(job.kind, job.recording_id) for job in jobs.jobs}
    assert ("record", waiting["id"]) in submitted and ("upload", uploading["id"]) in submitted


async def test_a_recording_no_recorder_takes_in_time_ends_errored(api: Api, app_id: str) -> None:
    waiting = await recording_in(api, app_id, "INVOKED")
    async with api.services.db.write() as session:
        row = await session.get(Recording, waiting["id"])
        assert row is not None
        row.invoked_time = utcnow() - timedelta(minutes=11)
    await api.services.reconciler.pass_once()
    done = await api.ok("GET", f"/{app_id}/recordings/{waiting['id']}")
    assert done["status"] == "ERRORED" and done["stop_reason"] == {"reason": "INTERNAL_ERROR", "caller": None}


async def track_recording(api: Api, app_id: str, **body: Any) -> dict[str, Any]:
    """A RECORDING track recording of a meeting with a live session."""
    meeting = await api.new_meeting(app_id)
    participant = await api.new_participant(app_id, meeting["id"])
    await peer_joined(api.services.db, meeting["id"], participant["id"])
    data = await api.ok("POST", f"/{app_id}/recordings/track", json={"meeting_id": meeting["id"], **body})
    await api.services.reports.capture_started(data["recording"]["id"])
    return await api.ok("GET", f"/{app_id}/recordings/{data['recording']['id']}")


def track_entry(name: str, user_id: str, peer_id: str, size: int) -> ManifestFile:
    return ManifestFile(
        name, "default", "audio", "opus", user_id, "user-x", "X", peer_id, 0.25, None, None, 1.0, size
    )  # fmt: skip


async def test_track_upload_links_every_file_per_layer_and_the_manifest(api: Api, app_id: str) -> None:
    recording = await track_recording(api, app_id)
    rid = recording["id"]
    names = [track_file_name("default", user, f"peer-{user}", "audio", 1772445905120, "webm") for user in ("u1", "u2")]
    for name, size in zip(names, (300, 500), strict=True):
        spool_file(api, recording, name, b"\x1a" * size)
    manifest = Manifest(rid, recording["meeting_id"], recording["session_id"], recording["started_time"], "x", (
        track_entry(names[0], "u1", "peer-u1", 300), track_entry(names[1], "u2", "peer-u2", 500),
    ))  # fmt: skip
    manifest_size = write_manifest(spool_dir(api.services.settings.data_dir, rid) / manifest_file_name(rid), manifest)
    await api.services.reports.end_capture(rid, {"reason": "API_CALL", "caller": None}, file_size=123)
    await upload(api.services.work, rid)
    done = await api.ok("GET", f"/{app_id}/recordings/{rid}")
    assert done["status"] == "UPLOADED" and done["audio_download_url"] is None
    assert done["file_size"] == 300 + 500 + manifest_size
    (layer,) = done["download_url"]
    assert layer["layer_name"] == "default" and set(layer["download_urls"]) == set(names)
    first = layer["download_urls"][names[0]]
    assert (first["user_id"], first["peer_id"], first["file_size"]) == ("u1", "peer-u1", 300)
    response = await api.client.get(first["download_url"].removeprefix("http://testserver"))
    assert response.status_code == 200 and response.headers["content-type"] == "audio/webm"
    assert layer["manifest"]["file_name"] == manifest_file_name(rid) and layer["manifest"]["file_size"] == manifest_size
    served = await api.client.get(layer["manifest"]["download_url"].removeprefix("http://testserver"))
    assert Manifest.from_json(served.content) == manifest


async def test_track_recording_cut_short_by_a_restart_uploads_its_files_with_a_rebuilt_manifest(
    api: Api, app_id: str
) -> None:
    recording = await track_recording(api, app_id)
    rid = recording["id"]
    started_s = parse_iso8601(recording["started_time"]).replace(tzinfo=UTC).timestamp()
    name = track_file_name("default", "u1", "p1", "audio", round(started_s * 1000) + 2500, "webm")
    spool_file(api, recording, name, b"\x1a" * 640)
    empty = await track_recording(api, app_id)
    await api.services.reconciler.pass_once()
    nothing = await api.ok("GET", f"/{app_id}/recordings/{empty['id']}")
    assert nothing["status"] == "ERRORED" and nothing["stop_reason"]["reason"] == "INTERNAL_ERROR", "no media"
    cut = await api.ok("GET", f"/{app_id}/recordings/{rid}")
    assert cut["status"] == "UPLOADING" and cut["file_size"] == 640
    await upload(api.services.work, rid)
    done = await api.ok("GET", f"/{app_id}/recordings/{rid}")
    assert done["status"] == "UPLOADED" and list(done["download_url"][0]["download_urls"]) == [name]
    rebuilt = read_manifest(api.services.bucket.path(rid, manifest_file_name(rid)))
    assert rebuilt is not None and rebuilt.recovered
    (entry,) = rebuilt.files
    assert (entry.user_id, entry.peer_id, entry.offset_s) == ("u1", "p1", 2.5)
