"""`recordkit status` (issue 14, observability) beside a real `recordkit serve`, on SQLite and on PostgreSQL: the
process with its load, the recording it holds, the job queue; and nothing once the process stopped."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from recordkit.recording.capacity import COMPOSITE_UNITS
from tests.e2e.test_durable_work import bot_recorded
from tests.helpers import CREDENTIALS_ENV
from tests.support.media import Setup
from tests.support.postgres import fresh_database
from tests.support.server import recordkit_serve


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: the data dir's SQLite database."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_database(request.getfixturevalue("pg_server")) as url:
        yield url


def status(data_dir: Path, database_url: str | None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "recordkit", "status", "--data-dir", str(data_dir)]
    if database_url:
        command += ["--database-url", database_url]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=dict(os.environ))


async def until_shown(data_dir: Path, database_url: str | None, pattern: str, timeout_s: float = 20) -> str:
    """The status text once `pattern` matches a line of it (the load shown is the last heartbeat's, 5 s apart)."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = await asyncio.to_thread(status, data_dir, database_url)
        assert shown.returncode == 0, shown.stderr
        if re.search(pattern, shown.stdout, re.MULTILINE) or time.monotonic() > deadline:
            return shown.stdout
        await asyncio.sleep(0.5)


async def test_status_shows_the_process_its_load_and_the_recording_it_holds(
    database_url: str | None, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    with recordkit_serve(data_dir, database_url, CREDENTIALS_ENV) as served:
        setup = Setup(served.base_url)
        async with AsyncExitStack() as stack:
            _, rid, _ = await bot_recorded(stack, setup, served.base_url)
            node = re.escape(f"{socket.gethostname()}:{served.pid}:") + r"\S+"
            # Its row: role, address, the composite's units in use, one recording held, seen in the last beats.
            # A process doing everything hosts media: its media address, and the one meeting's room it hosts when
            # rooms are placed (PostgreSQL; one process on SQLite places nothing).
            rooms = "0" if database_url is None else "1"
            media = r"127\.0\.0\.1 udp any"
            row = (
                rf"^{node}\s+all\s+{re.escape(served.base_url)}\s+{media}\s+{rooms}\s+{COMPOSITE_UNITS}/\d+\s+1\s+"
                r".*\d+ s ago$"
            )
            shown = await until_shown(data_dir, database_url, row)
            assert re.search(row, shown, re.MULTILINE), shown
            assert re.search(rf"^{node}\s+{rid}\s+RECORDING\s+\S+ \S+ \(\d+ s\)\s+\d+ s left$", shown, re.M), shown
            assert re.search(r"^record\s+0\s+1$", shown, re.MULTILINE), shown
            assert "RECORDING 1" in shown, shown
    # SIGTERM: the recording was ended and handed to its upload, and the process took its row away.
    stopped = status(data_dir, database_url)
    assert stopped.returncode == 0, stopped.stderr
    assert "(no process is running)" in stopped.stdout and rid not in stopped.stdout, stopped.stdout


def test_status_of_a_data_dir_without_a_database_says_so(tmp_path: Path) -> None:
    shown = status(tmp_path / "nowhere", None)
    assert shown.returncode == 1
    assert shown.stderr.strip() == f"recordkit: no database at {tmp_path / 'nowhere' / 'recordkit.db'}"
    assert not (tmp_path / "nowhere" / "recordkit.db").exists()
