"""The spool's disk floor, `RECORDKIT_MIN_FREE_MB` (issue 10, item 4): no start below it (503), and a recording
that reaches it while capturing stops by itself and uploads what it has.

The disk is really filled: the test allocates a file on the data dir's filesystem (fallocate), so free space
falls under a floor set just below what was free when the server started.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from recordkit.bot.client import join
from recordkit.bot.synthetic import EncodedLoopAudioTrack, EncodedLoopVideoTrack, SyntheticClock
from recordkit.config import min_free_mb
from tests.recorder.test_composite_e2e import until_status
from tests.support.media import Setup, serve_in_thread

MB = 1024 * 1024


def free_mb(path: Path) -> int:
    return shutil.disk_usage(path).free // MB


@contextmanager
def server_with_floor(data_dir: Path, floor_mb: int) -> Iterator[Setup]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with serve_in_thread(data_dir, environ={"RECORDKIT_MIN_FREE_MB": str(floor_mb)}) as server:
        rest = Setup(server.base_url)
        try:
            yield rest
        finally:
            rest.close()


@contextmanager
def disk_filled(path: Path, megabytes: int) -> Iterator[None]:
    """A file of `megabytes` really allocated on the disk of `path`, removed afterwards."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.posix_fallocate(fd, 0, megabytes * MB)
        yield
    finally:
        os.close(fd)
        filler.unlink()


def test_a_start_below_the_floor_answers_503_and_stores_nothing(tmp_path: Path) -> None:
    with server_with_floor(tmp_path / "data", free_mb(tmp_path) + 1024) as setup:
        app_id, meeting_id = setup.meeting()
        for path, body in (
            (f"/{app_id}/recordings", {"meeting_id": meeting_id}),
            (f"/{app_id}/recordings/track", {"meeting_id": meeting_id}),
        ):
            response = setup.http.post(path, json=body)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "60"
            errors = response.json()["errors"]
            assert response.json()["success"] is False
            assert errors[0]["message"].startswith("Not enough free disk space to record"), errors
        assert setup.data("GET", f"/{app_id}/recordings") == []


@pytest.fixture
def near_the_floor(tmp_path: Path) -> Iterator[Setup]:
    """A server whose floor is 200 MB below the space free now."""
    with server_with_floor(tmp_path / "data", free_mb(tmp_path) - 200) as setup:
        yield setup


async def test_a_recording_reaching_the_floor_stops_by_itself_and_uploads_what_it_has(
    near_the_floor: Setup, tmp_path: Path
) -> None:
    setup = near_the_floor
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    token = (await asyncio.to_thread(setup.participant, app_id, meeting_id, "Ada"))["token"]
    clock = SyntheticClock()
    video, audio = EncodedLoopVideoTrack(clock, label="Ada"), EncodedLoopAudioTrack(clock)
    async with join(setup.base_url, meeting_id, token, audio=audio, video=video):
        started = await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings", json={"meeting_id": meeting_id})
        recording = await until_status(setup, app_id, started["id"], {"RECORDING"})
        assert recording["status"] == "RECORDING", recording
        await asyncio.sleep(3)
        with disk_filled(tmp_path, 400):
            ended = await until_status(setup, app_id, started["id"], {"UPLOADING", "UPLOADED", "ERRORED"}, 5)
        assert ended["status"] in {"UPLOADING", "UPLOADED"}, "it stopped by itself, with the bot still there"
    done = await until_status(setup, app_id, started["id"], {"UPLOADED", "ERRORED"})
    assert done["status"] == "UPLOADED", done
    assert done["stop_reason"]["reason"] == "INTERNAL_ERROR", done
    assert done["recording_duration"] >= 3


@pytest.mark.parametrize("text", ["-1", "1.5", "lots", " 5"])
def test_the_floor_setting_takes_whole_megabytes_only(text: str) -> None:
    assert min_free_mb({}) == 1024 and min_free_mb({"RECORDKIT_MIN_FREE_MB": "0"}) == 0
    with pytest.raises(ValueError, match="RECORDKIT_MIN_FREE_MB"):
        min_free_mb({"RECORDKIT_MIN_FREE_MB": text})
