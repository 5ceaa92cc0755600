"""Durable work (issue 9) with real `recordkit serve` processes, killed, stopped and signalled as in production:
jobs and their attempt counts survive `kill -9`, SIGTERM drains, and control and recovery go through the
database between processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from recordkit.clock import parse_iso8601
from recordkit.config import sqlite_url
from recordkit.db.engine import Database
from tests.helpers import CREDENTIALS_ENV
from tests.recorder.test_composite_e2e import download, ffprobe, until_status
from tests.recording.test_recording_ends import bot, start
from tests.support.media import Setup
from tests.support.postgres import fresh_database
from tests.support.server import Served, recordkit_serve

# Retries 4× sooner than in production (0.5, 1, 2, 4, 8 s): the policy is the same, the test is shorter.
ENV = {**CREDENTIALS_ENV, "RECORDKIT_RETRY_DELAY_SCALE": "0.25"}
UPLOAD_ATTEMPTS = 6  # recording/upload.py's policy


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: the data dir's SQLite database."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_database(request.getfixturevalue("pg_server")) as url:
        yield url


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    with fresh_database(pg_server) as url:
        yield url


async def query(data_dir: Path, database_url: str | None, sql: str, **params: Any) -> list[Any]:
    db = Database(database_url or sqlite_url(data_dir))
    try:
        async with db.read() as session:
            return list((await session.execute(text(sql), params)).all())
    finally:
        await db.close()


async def upload_jobs(data_dir: Path, database_url: str | None, recording_id: str) -> list[tuple[str, int]]:
    """(status, attempts) of every upload job of a recording, in either engine's table."""
    if database_url is None:
        sql = "SELECT status, attempts FROM jobs WHERE kind = 'upload' AND recording_id = :rid ORDER BY id"
    else:
        sql = (
            "SELECT status::text, attempts FROM procrastinate_jobs WHERE task_name = 'upload'"
            " AND args->>'recording_id' = :rid ORDER BY id"
        )
    rows = await query(data_dir, database_url, sql, rid=recording_id)
    return [(str(status), int(attempts)) for status, attempts in rows]


async def until_jobs(
    data_dir: Path, database_url: str | None, recording_id: str, wanted: list[tuple[str, int]], timeout_s: float = 20
) -> list[tuple[str, int]]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = await upload_jobs(data_dir, database_url, recording_id)
        if jobs == wanted or time.monotonic() > deadline:
            return jobs
        await asyncio.sleep(0.05)


async def column(data_dir: Path, database_url: str | None, name: str, recording_id: str) -> Any:
    """One column of one recording row, as the database has it."""
    ((value,),) = await query(data_dir, database_url, f"SELECT {name} FROM recordings WHERE id = :id", id=recording_id)
    return value


async def act(setup: Setup, app_id: str, recording_id: str, action: str) -> dict[str, Any]:
    path = f"/{app_id}/recordings/{recording_id}"
    return dict(await asyncio.to_thread(setup.data, "PUT", path, json={"action": action}))


def kill_9(served: Served) -> None:
    served.process.kill()
    served.process.wait()


def duration_s(path: Path) -> float:
    return float(ffprobe(path)["format"]["duration"])


def started_s(recording: dict[str, Any]) -> float:
    return parse_iso8601(recording["started_time"]).replace(tzinfo=UTC).timestamp()


async def bot_recorded(stack: AsyncExitStack, setup: Setup, media_url: str) -> tuple[str, str, dict[str, Any]]:
    """A new meeting with a bot in it (joined through `media_url`) and a composite recording of it, RECORDING:
    (app id, recording id, recording)."""
    app_id, meeting_id = setup.meeting()
    await bot(stack, media_url, setup, app_id, meeting_id, "Witness")
    rid = await start(setup, app_id, meeting_id)
    recording = await until_status(setup, app_id, rid, {"RECORDING"})
    assert recording["status"] == "RECORDING"
    return app_id, rid, recording


async def test_uploads_are_retried_on_their_policy_across_a_kill_9(database_url: str | None, tmp_path: Path) -> None:
    """Acceptance 1: one upload fails twice then succeeds, one always fails; the process is killed in between."""
    data_dir = tmp_path / "data"
    with recordkit_serve(data_dir, database_url, ENV) as first:
        setup = Setup(first.base_url)
        app_id, meeting_id = setup.meeting()
        async with AsyncExitStack() as stack:
            await bot(stack, first.base_url, setup, app_id, meeting_id, "Witness")
            flaky = await start(setup, app_id, meeting_id, allow_multiple_recordings=True)
            doomed = await start(setup, app_id, meeting_id, allow_multiple_recordings=True)
            for rid in (flaky, doomed):
                assert (await until_status(setup, app_id, rid, {"RECORDING"}))["status"] == "RECORDING"
            await asyncio.sleep(2)
            # A file where each recording's bucket folder goes: every move into the bucket fails (FileExistsError).
            (data_dir / "bucket").mkdir(exist_ok=True)
            for rid in (flaky, doomed):
                (data_dir / "bucket" / rid).write_text("in the way")
                stopped = await act(setup, app_id, rid, "stop")
                assert stopped["status"] == "UPLOADING" and stopped["file_size"] > 0
            for rid in (flaky, doomed):
                # Two attempts failed; the third waits out its backoff (1 s here) when the process dies.
                assert await until_jobs(data_dir, database_url, rid, [("todo", 2)]) == [("todo", 2)]
            kill_9(first)
        setup.close()

    (data_dir / "bucket" / flaky).unlink()  # what failed the flaky upload is mended while recordkit is down
    with recordkit_serve(data_dir, database_url, ENV) as second:
        setup = Setup(second.base_url)
        done = await until_status(setup, app_id, flaky, {"UPLOADED", "ERRORED"})
        assert done["status"] == "UPLOADED", done
        path = await download(done["download_url"], tmp_path / done["output_file_name"])
        failed = await until_status(setup, app_id, doomed, {"UPLOADED", "ERRORED"}, timeout_s=60)
        setup.close()
    assert await upload_jobs(data_dir, database_url, flaky) == [("succeeded", 3)], "attempt 3 was the one that worked"
    assert abs(duration_s(path) - done["recording_duration"]) <= 1

    assert failed["status"] == "ERRORED", failed
    assert failed["stop_reason"] == {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}}, "never rewritten"
    assert failed["download_url"] is None
    assert await upload_jobs(data_dir, database_url, doomed) == [("failed", UPLOAD_ATTEMPTS)], "2 before, 4 after"
    reason = await column(data_dir, database_url, "error_reason", doomed)
    assert reason.startswith("upload to the built-in bucket failed: FileExistsError"), reason


async def test_a_kill_9_between_a_stop_and_its_upload_loses_nothing(database_url: str | None, tmp_path: Path) -> None:
    """Acceptance 2: the upload job commits with the stop, so the process dying before it starts loses nothing."""
    data_dir = tmp_path / "data"
    # This process takes no upload jobs: its stop's upload job is committed and not yet started when it dies.
    with recordkit_serve(data_dir, database_url, {**ENV, "RECORDKIT_MAX_UPLOADS": "0"}) as first:
        setup = Setup(first.base_url)
        async with AsyncExitStack() as stack:
            app_id, rid, _ = await bot_recorded(stack, setup, first.base_url)
            await asyncio.sleep(3)
            stopped = await act(setup, app_id, rid, "stop")
            assert stopped["status"] == "UPLOADING"
            assert await upload_jobs(data_dir, database_url, rid) == [("todo", 0)]
            kill_9(first)
        setup.close()
    with recordkit_serve(data_dir, database_url, ENV) as second:
        setup = Setup(second.base_url)
        done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
        setup.close()
        assert done["status"] == "UPLOADED", done
        path = await download(done["download_url"], tmp_path / done["output_file_name"])
    assert await upload_jobs(data_dir, database_url, rid) == [("succeeded", 1)], "the committed job itself, run once"
    assert done["file_size"] == stopped["file_size"]
    assert abs(duration_s(path) - done["recording_duration"]) <= 1


async def test_sigterm_drains_a_recording_to_uploaded_and_exits(database_url: str | None, tmp_path: Path) -> None:
    """Acceptance 3: SIGTERM 10 s into a recording: the process exits by itself within the drain timeout (30 s),
    the recording is UPLOADED with everything up to the signal, and a restart finds nothing to recover."""
    data_dir = tmp_path / "data"
    with recordkit_serve(data_dir, database_url, ENV) as served:
        setup = Setup(served.base_url)
        async with AsyncExitStack() as stack:
            app_id, rid, recording = await bot_recorded(stack, setup, served.base_url)
            await asyncio.sleep(max(0.0, started_s(recording) + 10 - time.time()))
            signalled_at = time.time()
            served.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(served.process.wait, 35)
            exited_after_s = time.time() - signalled_at
        setup.close()
        drain_log = served.log()
    assert exited_after_s < 30, drain_log[-3000:]
    assert await column(data_dir, database_url, "status", rid) == "UPLOADED", drain_log[-3000:]
    updated_at = await column(data_dir, database_url, "updated_at", rid)

    with recordkit_serve(data_dir, database_url, ENV) as again:
        setup = Setup(again.base_url)
        await asyncio.sleep(4)  # a reconciler pass at start and one more
        done = dict(await asyncio.to_thread(setup.data, "GET", f"/{app_id}/recordings/{rid}"))
        setup.close()
        restart_log = again.log()
        # The link was signed by the first process, under its address.
        link = again.base_url + done["download_url"][done["download_url"].index("/files/") :]
        path = await download(link, tmp_path / done["output_file_name"])
    assert done["status"] == "UPLOADED" and done["stop_reason"] == {"reason": "INTERNAL_ERROR", "caller": None}
    ((updated_again,),) = await query(
        data_dir, database_url, "SELECT updated_at FROM recordings WHERE id = :id", id=rid
    )
    assert updated_again == updated_at, "the restart found nothing to recover"
    assert "recorder is gone" not in restart_log and "queueing one" not in restart_log
    up_to_signal_s = signalled_at - started_s(done)
    assert up_to_signal_s - 0.5 <= duration_s(path) <= up_to_signal_s + 0.5, (duration_s(path), up_to_signal_s)
    print(
        f"exited {exited_after_s:.2f} s after SIGTERM; file {duration_s(path):.2f} s, "
        f"capture until the signal {up_to_signal_s:.2f} s"
    )


def owner_pid(owner_id: str | None) -> int | None:
    return int(owner_id.split(":")[1]) if owner_id else None


async def test_pause_and_stop_through_one_process_reach_a_recorder_in_another(pg_url: str, tmp_path: Path) -> None:
    """Acceptance 4: two `recordkit serve` on one PostgreSQL; the recorder runs in one, the API calls go to the
    other, and the file shows the pause was applied where the recorder runs."""
    data_dir = tmp_path / "data"
    api_only = {**ENV, "RECORDKIT_MAX_RECORDINGS": "0"}
    with (
        recordkit_serve(data_dir, pg_url, ENV) as recorder_node,
        recordkit_serve(data_dir, pg_url, api_only) as api_node,
    ):
        setup = Setup(api_node.base_url)
        async with AsyncExitStack() as stack:
            app_id, rid, _ = await bot_recorded(stack, setup, recorder_node.base_url)
            assert owner_pid(await column(data_dir, pg_url, "owner_id", rid)) == recorder_node.pid
            await asyncio.sleep(3)
            applied = {}
            for action, state in (("pause", "PAUSED"), ("resume", "RECORDING")):
                asked = time.monotonic()
                assert (await act(setup, app_id, rid, action))["status"] == state
                while (await query(data_dir, pg_url, "SELECT applied_state FROM recordings WHERE id = :id", id=rid))[0][
                    0
                ] != state:
                    assert time.monotonic() - asked < 2, f"{action} did not reach the recorder"
                    await asyncio.sleep(0.02)
                applied[action] = time.monotonic() - asked
                await asyncio.sleep(3)
            stopped = await act(setup, app_id, rid, "stop")
        done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
        setup.close()
        assert done["status"] == "UPLOADED" and done["file_size"] == stopped["file_size"]
        path = await download(done["download_url"], tmp_path / done["output_file_name"])
    assert stopped["status"] == "UPLOADING" and stopped["file_size"] > 0, "stop answers with the finalised file"
    assert stopped["stop_reason"] == {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}}
    assert abs(duration_s(path) - 6) < 0.8, "about 3 s before the pause and 3 s after the resume, the pause cut out"
    assert abs(duration_s(path) - done["recording_duration"]) <= 1
    print(f"pause applied {applied['pause'] * 1000:.0f} ms, resume {applied['resume'] * 1000:.0f} ms after the call")


async def test_a_hung_owner_is_recovered_by_another_process_within_15_s(pg_url: str, tmp_path: Path) -> None:
    """Acceptance 5: the recording's owner stops renewing its lease (SIGSTOP); another process recovers it."""
    data_dir = tmp_path / "data"
    api_only = {**ENV, "RECORDKIT_MAX_RECORDINGS": "0"}
    with recordkit_serve(data_dir, pg_url, ENV) as owner, recordkit_serve(data_dir, pg_url, api_only) as rescuer:
        setup = Setup(rescuer.base_url)
        async with AsyncExitStack() as stack:
            app_id, rid, _ = await bot_recorded(stack, setup, owner.base_url)
            await asyncio.sleep(4)
            os.kill(owner.pid, signal.SIGSTOP)
            hung_at = time.time()
            try:
                recovered = await until_status(setup, app_id, rid, {"UPLOADING", "UPLOADED", "ERRORED"}, timeout_s=25)
                recovered_after_s = time.time() - hung_at
                done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
            finally:
                os.kill(owner.pid, signal.SIGCONT)
            await asyncio.sleep(3)  # the owner wakes, finds its claim gone, and lets go without a write
            after = dict(await asyncio.to_thread(setup.data, "GET", f"/{app_id}/recordings/{rid}"))
        setup.close()
        owner_log = owner.log()
        assert done["status"] == "UPLOADED", done
        path = await download(done["download_url"], tmp_path / done["output_file_name"])
    assert recovered["status"] in {"UPLOADING", "UPLOADED"} and recovered_after_s <= 15, recovered_after_s
    assert done["status"] == "UPLOADED" and done["stop_reason"] == {"reason": "INTERNAL_ERROR", "caller": None}
    assert after == done, "the woken owner changed nothing"
    assert "Traceback" not in owner_log, owner_log[-3000:]
    assert duration_s(path) >= hung_at - started_s(done) - 2.5, "the file holds what was captured until the hang"
    print(f"recovered {recovered_after_s:.1f} s after the owner hung")
