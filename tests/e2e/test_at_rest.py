"""Issue 10, acceptance 6, with a real `recordkit serve` and a real recording: what recordkit keeps in its data dir
is readable by its own user only, the access log keeps no download-link signature, and hostile `expires` values
are refused through the real HTTP stack."""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path

import httpx

from tests.helpers import CREDENTIALS_ENV
from tests.recorder.test_composite_e2e import until_status
from tests.recording.test_recording_ends import bot, start
from tests.support.media import Setup
from tests.support.server import recordkit_serve


def modes(data_dir: Path) -> dict[str, int]:
    """The permission bits of the data dir ("." ) and of everything under it, by path relative to it."""
    found = {".": data_dir.stat().st_mode & 0o7777}
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = Path(root) / name
            found[str(path.relative_to(data_dir))] = path.lstat().st_mode & 0o7777
    return found


def not_private(found: dict[str, int], data_dir: Path) -> dict[str, str]:
    """What is not 0700 (a directory) or 0600 (anything else), with its mode."""
    wider = {}
    for name, mode in found.items():
        wanted = 0o700 if (data_dir / name).is_dir() else 0o600
        if mode != wanted:
            wider[name] = oct(mode)
    return wider


async def test_a_recording_leaves_only_private_files_and_no_signature_in_the_log(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with ExitStack() as stack:
        # Started with a umask that hides nothing: the privacy must come from recordkit itself.
        inherited = os.umask(0)
        try:
            served = stack.enter_context(recordkit_serve(data_dir, env=CREDENTIALS_ENV))
        finally:
            os.umask(inherited)
        setup = Setup(served.base_url)
        stack.callback(setup.close)
        app_id, meeting_id = setup.meeting()
        async with AsyncExitStack() as bots:
            await bot(bots, served.base_url, setup, app_id, meeting_id, "Witness")
            rid = await start(setup, app_id, meeting_id)
            assert (await until_status(setup, app_id, rid, {"RECORDING"}))["status"] == "RECORDING"
            await asyncio.sleep(2)  # fragments of the spool file are on disk
            while_recording = modes(data_dir)
            await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})
            done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
        assert done["status"] == "UPLOADED", done
        uploaded = modes(data_dir)

        link = done["download_url"]
        signature = link.rsplit("signature=", 1)[1]
        files_path = link[link.index("/files/") : link.index("?")]
        async with httpx.AsyncClient(base_url=served.base_url) as client:
            assert (await client.get(link)).status_code == 200
            for expires in ("%C2%B2", "9" * 5000):
                refused = await client.get(f"{files_path}?expires={expires}&signature={signature}")
                assert refused.status_code == 403, (expires[:12], refused.text)
        log = served.log()

    expected = {"credentials.json", "recordkit.db", "recordkit.db-wal", "recordkit.db-shm", "spool", f"spool/{rid}"}
    assert expected <= while_recording.keys(), sorted(while_recording)
    assert any(name.startswith(f"spool/{rid}/") for name in while_recording), sorted(while_recording)
    assert f"bucket/{rid}/{done['output_file_name']}" in uploaded, sorted(uploaded)
    assert not_private(while_recording, data_dir) == {}
    assert not_private(uploaded, data_dir) == {}

    assert f"?expires={link.split('expires=')[1].split('&')[0]}&signature=REDACTED" in log
    assert signature not in log
