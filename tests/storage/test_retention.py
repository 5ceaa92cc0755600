"""The built-in bucket deletes a recording's files when its links expire; the row stays (recordings.md §10.2)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from recordkit.clock import utcnow
from recordkit.db.models import Recording
from recordkit.recording.upload import upload
from recordkit.storage.retention import delete_expired_files
from tests.helpers import Api
from tests.recording.test_upload import recording_in, spool_file


@pytest.fixture(scope="module")
async def app_id(api: Api) -> str:
    return await api.new_app("Retention")


async def uploaded(api: Api, app_id: str, link_lifetime: timedelta = timedelta(days=7)) -> dict[str, Any]:
    recording = await recording_in(api, app_id, "UPLOADING")
    spool_file(api, recording)
    work = api.services.work
    settings = replace(work.settings, retention_days=link_lifetime / timedelta(days=1))
    await upload(replace(work, settings=settings), recording["id"])
    data: dict[str, Any] = await api.ok("GET", f"/{app_id}/recordings/{recording['id']}")
    assert data["status"] == "UPLOADED", data
    return data


async def expire(api: Api, recording_id: str) -> None:
    async with api.services.db.write() as session:
        await session.execute(
            update(Recording)
            .where(Recording.id == recording_id)
            .values(download_url_expiry=utcnow() - timedelta(seconds=1))
        )


async def test_expired_files_are_deleted_and_the_row_is_kept(api: Api, app_id: str) -> None:
    old, fresh = await uploaded(api, app_id), await uploaded(api, app_id)
    bucket = api.services.bucket
    orphan = bucket.root / "not-a-recording"
    orphan.mkdir(parents=True, exist_ok=True)
    await expire(api, old["id"])

    deleted = await delete_expired_files(bucket, api.services.recordings)

    assert deleted == [old["id"]]
    assert not (bucket.root / old["id"]).exists()
    assert (bucket.root / fresh["id"] / fresh["output_file_name"]).exists()
    assert orphan.exists(), "a folder without an expired row is left alone"
    kept = await api.ok("GET", f"/{app_id}/recordings/{old['id']}")
    assert kept["status"] == "UPLOADED" and kept["download_url"] is None and kept["download_url_expiry"] is not None
    assert await delete_expired_files(bucket, api.services.recordings) == [], "nothing left to delete"


async def test_links_last_as_long_as_the_retention(api: Api, app_id: str) -> None:
    before = int(time.time())
    data = await uploaded(api, app_id, timedelta(days=30))
    expires = int(data["download_url"].split("expires=")[1].split("&")[0])
    assert before + 30 * 86400 <= expires <= int(time.time()) + 30 * 86400
