"""The reconciler leaves no recording in a non-terminal state with no job and no owner (recording/reconciler.py)."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest

from recordkit.clock import parse_iso8601, utcnow
from recordkit.db.models import Recording
from recordkit.recording.ownership import STOPPED
from tests.helpers import Api
from tests.recording.test_upload import recording_in, spool_file

GONE = f"{socket.gethostname()}:{2**22 + 777}:0001"  # a process of this host that no longer runs


@pytest.fixture(scope="module")
async def app_id(api: Api) -> str:
    return await api.new_app("Reconciler")


async def edit(api: Api, recording_id: str, **values: Any) -> None:
    async with api.services.db.write() as session:
        row = await session.get(Recording, recording_id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)


async def status_of(api: Api, app_id: str, recording_id: str) -> dict[str, Any]:
    return dict(await api.ok("GET", f"/{app_id}/recordings/{recording_id}"))


async def test_captures_whose_owner_is_gone_are_finished_and_held_ones_are_not(api: Api, app_id: str) -> None:
    now = utcnow()
    lapsed = await recording_in(api, app_id, "RECORDING")
    await edit(api, lapsed["id"], owner_id="other.example:1:aa", lease_expires_at=now - timedelta(seconds=1))
    spool_file(api, lapsed, content=b"\x01" * 321)
    dead = await recording_in(api, app_id, "RECORDING")
    await edit(api, dead["id"], owner_id=GONE, lease_expires_at=now + timedelta(seconds=9))
    held = await recording_in(api, app_id, "RECORDING")
    await edit(api, held["id"], owner_id="other.example:1:aa", lease_expires_at=now + timedelta(seconds=9))
    await api.services.reconciler.pass_once()

    finished = await status_of(api, app_id, lapsed["id"])
    assert finished["status"] == "UPLOADING" and finished["file_size"] == 321
    assert finished["stop_reason"] == {"reason": "INTERNAL_ERROR", "caller": None}
    assert (await status_of(api, app_id, dead["id"]))["status"] == "UPLOADING", "a dead pid needs no lease to lapse"
    assert (await status_of(api, app_id, held["id"]))["status"] == "RECORDING", "a running lease is respected"
    assert ("upload", lapsed["id"]) in {(job.kind, job.recording_id) for job in api.jobs.jobs}


async def test_a_stop_its_owner_never_applied_ends_where_and_why_it_was_asked(api: Api, app_id: str) -> None:
    recording = await recording_in(api, app_id, "RECORDING")
    asked_at = utcnow() - timedelta(seconds=2)
    caller = {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}}
    await edit(
        api, recording["id"], owner_id=GONE, lease_expires_at=utcnow() + timedelta(seconds=9),
        wanted_state=STOPPED, wanted_at=asked_at, wanted_reason=caller, started_time=utcnow() - timedelta(seconds=30),
    )  # fmt: skip
    await api.services.reconciler.pass_once()
    done = await status_of(api, app_id, recording["id"])
    assert done["status"] == "UPLOADING" and done["stop_reason"] == caller
    assert parse_iso8601(done["stopped_time"]) == asked_at


async def test_jobless_rows_get_their_job_back_once_settled(api: Api, app_id: str) -> None:
    waiting = await recording_in(api, app_id, "INVOKED")
    fresh = await recording_in(api, app_id, "INVOKED")
    uploading = await recording_in(api, app_id, "UPLOADING")
    for rid in (waiting["id"], uploading["id"]):
        await edit(api, rid, updated_at=utcnow() - timedelta(seconds=10))
    api.jobs.jobs.clear()
    await api.services.reconciler.pass_once()
    queued = {(job.kind, job.recording_id) for job in api.jobs.jobs}
    assert ("record", waiting["id"]) in queued and ("upload", uploading["id"]) in queued
    assert ("record", fresh["id"]) not in queued, "a row that just changed may have its job on the way"
    await api.services.reconciler.pass_once()
    assert len(api.jobs.jobs) == len(queued), "a job that is there is not queued twice"


async def test_one_broken_row_does_not_stop_the_pass(api: Api, app_id: str) -> None:
    broken = await recording_in(api, app_id, "RECORDING")
    await edit(api, broken["id"], type="NOT-A-KIND")  # makes the state machine raise on this row
    stale = await recording_in(api, app_id, "INVOKED")
    await edit(api, stale["id"], invoked_time=utcnow() - timedelta(minutes=11))
    orphan = await recording_in(api, app_id, "RECORDING")
    await api.services.reconciler.pass_once()
    assert (await status_of(api, app_id, stale["id"]))["status"] == "ERRORED"
    assert (await status_of(api, app_id, orphan["id"]))["status"] == "UPLOADING"
    await edit(api, broken["id"], type="COMPOSITE")
    await api.services.reconciler.pass_once()
    assert (await status_of(api, app_id, broken["id"]))["status"] == "UPLOADING", "and the next pass mends it"


async def test_an_upload_ending_while_a_pass_reads_is_not_queued_again(
    api: Api, app_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race behind a duplicate upload job on PostgreSQL: the job ends between the pass's two reads."""
    uploading = await recording_in(api, app_id, "UPLOADING")
    await edit(api, uploading["id"], updated_at=utcnow() - timedelta(seconds=10))
    api.jobs.jobs.clear()
    listed = api.jobs.pending

    async def upload_ends_as_the_jobs_are_read(session: Any, kinds: Any, *, running: bool = True) -> Any:
        # The job's handler commits UPLOADED first; the engine then marks the job done: no longer pending.
        await edit(api, uploading["id"], status="UPLOADED")
        return await listed(session, kinds, running=running)

    monkeypatch.setattr(api.jobs, "pending", upload_ends_as_the_jobs_are_read)
    await api.services.reconciler.pass_once()
    assert ("upload", uploading["id"]) not in {(job.kind, job.recording_id) for job in api.jobs.jobs}
