"""Uploads to the user's storage when things go wrong (issue 11, acceptance 2), against a real `recordkit serve`.

The S3 server goes away and comes back; recordkit is killed with SIGKILL while its upload waits and comes back;
credentials are wrong; an SFTP server shows another host key. Each ends as the spec says: UPLOADED with the
object identical to recordkit's own copy, or ERRORED with a reason naming the destination and the built-in copy
still downloadable — and nothing written where the host key did not match.

The first takes about 50 s: the outage lasts 20 s, the upload's own retry delays (2, 4, 8, 16 s …) decide when
it is noticed that the server is back, and the upload goes through a proxy slow enough to stop the server
half-way through a PUT. The second takes about 20 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from recordkit.bot.client import join
from recordkit.bot.synthetic import EncodedLoopAudioTrack, EncodedLoopVideoTrack, SyntheticClock
from tests.helpers import CREDENTIALS_ENV
from tests.support.media import Setup
from tests.support.seaweedfs import SeaweedS3, seaweedfs_s3, stop
from tests.support.server import Served, recordkit_serve
from tests.support.slow_proxy import slow_proxy
from tests.support.sshd import sshd_server

PATH = "team/2026"
FAST_RETRIES = {**CREDENTIALS_ENV, "RECORDKIT_RETRY_DELAY_SCALE": "0.02"}


def s3_config(server: SeaweedS3, secret: str | None = None) -> dict[str, Any]:
    config = server.storage_config(PATH)
    return config if secret is None else {**config, "secret": secret}


async def until(setup: Setup, app_id: str, rid: str, wanted: set[str], timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            data = await asyncio.to_thread(setup.data, "GET", f"/{app_id}/recordings/{rid}")
        except httpx.TransportError:
            data = {"status": "(server down)"}
        if data["status"] in wanted or time.monotonic() > deadline:
            return data
        await asyncio.sleep(0.25)


async def recorded(base_url: str, setup: Setup, storage_config: dict[str, Any]) -> tuple[str, str]:
    """A 2 s bot-driven recording, stopped: (app id, recording id), the upload under way."""
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    token = (await asyncio.to_thread(setup.participant, app_id, meeting_id, "Ada"))["token"]
    clock = SyntheticClock()
    async with AsyncExitStack() as stack:
        audio, video = EncodedLoopAudioTrack(clock), EncodedLoopVideoTrack(clock, label="Ada")
        await stack.enter_async_context(join(base_url, meeting_id, token, audio=audio, video=video))
        body = {"meeting_id": meeting_id, "storage_config": storage_config}
        rid = (await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings", json=body))["id"]
        assert (await until(setup, app_id, rid, {"RECORDING"}))["status"] == "RECORDING"
        await asyncio.sleep(2)
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})
    return app_id, rid


def object_sha256(server: SeaweedS3, name: str) -> str:
    body = server.client().get_object(Bucket=server.bucket, Key=f"{PATH}/{name}")["Body"].read()
    return hashlib.sha256(body).hexdigest()


async def built_in_sha256(url: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    return hashlib.sha256(response.content).hexdigest()


def error_reason(served: Served, rid: str) -> str:
    with sqlite3.connect(served.data_dir / "recordkit.db") as db:
        (reason,) = db.execute("SELECT error_reason FROM recordings WHERE id = ?", (rid,)).fetchone()
    return str(reason)


@pytest.mark.waits  # 48 s at 0.25 cores (an upload waits for its server)
async def test_the_s3_server_stopped_mid_upload_and_back_20_s_later_still_ends_uploaded_and_identical(
    tmp_path: Path,
) -> None:
    with seaweedfs_s3(tmp_path) as s3, recordkit_serve(tmp_path / "data", env=CREDENTIALS_ENV) as served:
        setup = Setup(served.base_url)
        # The upload goes through a proxy at 50 kB/s, so the server can be stopped while a PUT is under way.
        async with slow_proxy(int(s3.endpoint.rsplit(":", 1)[1]), 50_000) as proxy:
            config = {**s3_config(s3), "endpoint": f"http://127.0.0.1:{proxy.port}"}
            app_id, rid = await recorded(served.base_url, setup, config)
            await asyncio.wait_for(proxy.sent_at_least(100_000), 30)
            stop(s3)
            await asyncio.sleep(20)
            assert (await until(setup, app_id, rid, {"UPLOADED"}, timeout_s=0))["status"] == "UPLOADING"
            assert "failed (attempt 1 of 6)" in served.log(), "the PUT under way failed"
            await asyncio.to_thread(s3.start)
            done = await until(setup, app_id, rid, {"UPLOADED", "ERRORED"}, timeout_s=90)
        assert done["status"] == "UPLOADED", done
        assert object_sha256(s3, done["output_file_name"]) == await built_in_sha256(done["download_url"])
        setup.close()


async def test_recordkit_killed_while_its_upload_waits_finishes_it_after_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with seaweedfs_s3(tmp_path) as s3:
        stop(s3)
        with recordkit_serve(data_dir, env=CREDENTIALS_ENV) as served:
            setup = Setup(served.base_url)
            app_id, rid = await recorded(served.base_url, setup, s3_config(s3))
            assert (await until(setup, app_id, rid, {"UPLOADING"}))["status"] == "UPLOADING"
            await asyncio.sleep(3)  # an attempt or two failed meanwhile
            os.kill(served.pid, signal.SIGKILL)
            served.process.wait()
            setup.close()
        await asyncio.to_thread(s3.start)
        with recordkit_serve(data_dir, env=CREDENTIALS_ENV) as served:
            setup = Setup(served.base_url)
            done = await until(setup, app_id, rid, {"UPLOADED", "ERRORED"})
            assert done["status"] == "UPLOADED", done
            assert object_sha256(s3, done["output_file_name"]) == await built_in_sha256(done["download_url"])
            setup.close()


async def test_wrong_credentials_end_errored_naming_the_destination_and_keep_the_built_in_copy(
    tmp_path: Path,
) -> None:
    with seaweedfs_s3(tmp_path) as s3, recordkit_serve(tmp_path / "data", env=FAST_RETRIES) as served:
        setup = Setup(served.base_url)
        app_id, rid = await recorded(served.base_url, setup, s3_config(s3, secret="not-the-secret-at-all"))
        done = await until(setup, app_id, rid, {"UPLOADED", "ERRORED"})
        assert done["status"] == "ERRORED", done
        reason = error_reason(served, rid)
        assert reason == f"upload to s3 bucket {s3.bucket} at {s3.endpoint} failed: SignatureDoesNotMatch", reason
        assert "not-the-secret-at-all" not in served.log()
        assert served.log().count("failed (attempt") == 5, "every attempt of the retry policy was made"
        await built_in_sha256(done["download_url"])  # downloads
        setup.close()


async def test_a_wrong_sftp_host_key_ends_errored_and_writes_nothing(tmp_path: Path) -> None:
    with sshd_server() as sftp, sshd_server() as impostor:
        config = sftp.storage_config(PATH, host_key=impostor.host_key)
        with recordkit_serve(tmp_path / "data", env=FAST_RETRIES) as served:
            setup = Setup(served.base_url)
            app_id, rid = await recorded(served.base_url, setup, config)
            done = await until(setup, app_id, rid, {"UPLOADED", "ERRORED"})
            assert done["status"] == "ERRORED", done
            assert error_reason(served, rid).startswith(f"upload to sftp {sftp.username}@{sftp.host}:{sftp.port}")
            setup.close()
        assert not (sftp.login_dir() / "team").exists(), "nothing written"
        assert "Accepted" not in sftp.log(), "it never logged in"
