"""Recordings delivered to the user's own storage (issue 11, acceptance 1 and 4).

For each kind of target a real server runs on 127.0.0.1 (SeaweedFS for S3, Azurite, fake-gcs-server, OpenSSH
sshd), a bot-driven recording with that `storage_config` ends UPLOADED, and each of its files is read back from
the target by a client of its own and compared, SHA-256, with the built-in copy. No secret of any of them
may appear in an API answer, the server's log, a job row, a store upload row or a webhook body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.storage.blob import BlobServiceClient
from sqlalchemy import select

from recordkit.bot.client import join
from recordkit.bot.synthetic import EncodedLoopAudioTrack, EncodedLoopVideoTrack, SyntheticClock
from recordkit.db.models import QueuedJob, Recording, StoreUpload, WebhookEvent
from tests.recorder.test_composite_e2e import until_status
from tests.support.azurite import azurite_server
from tests.support.fake_gcs import fake_gcs
from tests.support.media import Setup, ThreadServer
from tests.support.seaweedfs import SeaweedS3, seaweedfs_s3
from tests.support.sshd import sshd_server

PATH = "/team/2026/"


@dataclass(frozen=True)
class Target:
    """A storage server for one test: the storage_config naming it, its secrets, and how to read an object."""

    config: dict[str, Any]
    secrets: list[str]
    read: Callable[[str], bytes]


@contextlib.contextmanager
def s3_target(work_dir: Path) -> Iterator[Target]:
    with seaweedfs_s3(work_dir) as server:
        yield s3_target_of(server)


def s3_target_of(server: SeaweedS3) -> Target:
    def read(key: str) -> bytes:
        return bytes(server.client().get_object(Bucket=server.bucket, Key=key)["Body"].read())

    return Target(server.storage_config(PATH), [server.access_key, server.secret], read)


@contextlib.contextmanager
def azure_target(work_dir: Path) -> Iterator[Target]:
    with azurite_server() as server:

        def read(key: str) -> bytes:
            with BlobServiceClient.from_connection_string(server.connection_string) as client:
                return client.get_blob_client(server.container, key).download_blob().readall()

        key_only = server.connection_string.split("AccountKey=")[1].split(";")[0]
        yield Target(server.storage_config(PATH), [server.connection_string, key_only], read)


@contextlib.contextmanager
def gcs_target(work_dir: Path) -> Iterator[Target]:
    with fake_gcs(work_dir) as server:

        def read(key: str) -> bytes:
            response = httpx.get(server.media_url(key))
            response.raise_for_status()
            return response.content

        yield Target(server.storage_config(PATH), [], read)


@contextlib.contextmanager
def sftp_target(work_dir: Path) -> Iterator[Target]:
    with sshd_server() as server:

        def read(key: str) -> bytes:
            return (server.login_dir() / key).read_bytes()

        key_lines = [line for line in server.private_key.splitlines() if line and not line.startswith("-----")]
        # Relative: an absolute SFTP path is one on the server's own filesystem (§10.4).
        yield Target(server.storage_config(PATH.lstrip("/")), [server.private_key, *key_lines], read)


TARGETS = {"s3": s3_target, "azure": azure_target, "gcs": gcs_target, "sftp": sftp_target}


@asynccontextmanager
async def bot(server: ThreadServer, setup: Setup, app_id: str, meeting_id: str) -> AsyncIterator[None]:
    token = (await asyncio.to_thread(setup.participant, app_id, meeting_id, "Ada"))["token"]
    clock = SyntheticClock()
    audio, video = EncodedLoopAudioTrack(clock), EncodedLoopVideoTrack(clock, label="Ada")
    async with join(server.base_url, meeting_id, token, audio=audio, video=video):
        yield


async def record(server: ThreadServer, setup: Setup, body: dict[str, Any]) -> tuple[str, dict[str, Any], list[str]]:
    """A 3 s bot-driven recording started with `body`; its app, its final state and every API answer's text."""
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    answers = []
    async with bot(server, setup, app_id, meeting_id):
        response = await asyncio.to_thread(
            setup.http.post, f"/{app_id}/recordings", json={"meeting_id": meeting_id, **body}
        )
        assert response.status_code == 200, response.text
        answers.append(response.text)
        rid = response.json()["data"]["id"]
        assert (await until_status(setup, app_id, rid, {"RECORDING"}))["status"] == "RECORDING"
        await asyncio.sleep(3)
        stopped = await asyncio.to_thread(setup.http.put, f"/{app_id}/recordings/{rid}", json={"action": "stop"})
        answers.append(stopped.text)
    done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"}, timeout_s=60)
    for path in (f"/{app_id}/recordings/{rid}", f"/{app_id}/recordings?per_page=100"):
        answers.append((await asyncio.to_thread(setup.http.get, path)).text)
    return app_id, done, answers


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def stored_rows(server: ThreadServer, rid: str) -> list[str]:
    """Every row a recording left in the database that could carry a secret, as text."""
    db = server.services.db
    async with db.read() as session:
        rows: list[Any] = [await session.get(Recording, rid)]
        for model in (QueuedJob, StoreUpload, WebhookEvent):
            rows += (await session.execute(select(model).where(model.recording_id == rid))).scalars().all()
    return [repr({column: getattr(row, column) for column in row.__table__.columns.keys()}) for row in rows]


@pytest.mark.parametrize("kind", list(TARGETS))
async def test_a_recordings_files_arrive_byte_identical_and_no_secret_shows(
    server: ThreadServer, setup: Setup, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="recordkit")
    with TARGETS[kind](tmp_path) as target:
        body = {"storage_config": target.config, "audio_config": {"codec": "MP3"}}
        _, done, answers = await record(server, setup, body)
        assert done["status"] == "UPLOADED", done
        names = [done["output_file_name"], done["output_file_name"].rsplit(".", 1)[0] + ".mp3"]
        stored = [await asyncio.to_thread(target.read, f"{PATH.strip('/')}/{name}") for name in names]
    built_in = []
    async with httpx.AsyncClient() as client:
        for url in (done["download_url"], done["audio_download_url"]):
            built_in.append((await client.get(url)).content)
    assert [sha256(data) for data in stored] == [sha256(data) for data in built_in]
    assert all(len(data) > 1000 for data in stored)
    assert done["storage_config"]["type"] == target.config["type"]

    rows = await stored_rows(server, done["id"])
    upload_rows = [row for row in rows if "'destination'" in row]
    assert len(upload_rows) == 1 and "'confirmed'" in upload_rows[0] and names[0] in upload_rows[0]
    texts = [*answers, *rows, caplog.text]
    for secret in target.secrets:
        assert not [text for text in texts if secret in text], f"a {kind} secret shows"


async def test_with_the_built_in_bucket_disabled_the_store_holds_the_only_copy(
    server: ThreadServer, setup: Setup, tmp_path: Path
) -> None:
    with seaweedfs_s3(tmp_path) as s3:
        target = s3_target_of(s3)
        body = {"storage_config": target.config, "realtimekit_bucket_config": {"enabled": False}}
        _, done, _ = await record(server, setup, body)
        assert done["status"] == "UPLOADED", done
        key = f"{PATH.strip('/')}/{done['output_file_name']}"
        stored = await asyncio.to_thread(target.read, key)
        assert s3.client().head_object(Bucket=s3.bucket, Key=key)["ContentType"] == "video/mp4"
    assert len(stored) > 1000
    assert (done["download_url"], done["audio_download_url"], done["download_url_expiry"]) == (None, None, None)
    settings = server.services.settings
    assert not (settings.data_dir / "spool" / done["id"]).exists() or not any(
        (settings.data_dir / "spool" / done["id"]).iterdir()
    ), "no copy left in the spool"
    assert not (settings.bucket_dir / done["id"]).exists(), "no built-in copy"
