"""Shared fixtures: every API test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from recordkit.app import create_app
from recordkit.config import build_settings
from recordkit.db.migrate import upgrade
from tests.helpers import CREDENTIALS_ENV, Api, JobLog
from tests.support.postgres import fresh_database, postgres_server

# scripts/test.sh runs the `waits` tests beside the rest, whose quiet directories (no media, nothing timed) go
# first: that lane's load then falls on them and not on the tests that measure a recording's timing.
QUIET_FIRST = ("api", "unit", "jobs", "storage")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.relative_to(Path(__file__).parent).parts[0] not in QUIET_FIRST)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated, empty database of each kind for one test module."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'recordkit.db'}"
        upgrade(url)
        yield url
        return
    with fresh_database(request.getfixturevalue("pg_server")) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
async def api(database_url: str, data_dir: Path) -> AsyncIterator[Api]:
    """A client for an in-process recordkit on the module's database.

    Background jobs are only logged, not run, so what a test sees does not race with a worker;
    tests that need a job's effect run it themselves. The wake-up bus listens (a stop of a recording no
    recorder holds is finished by the reconciler it wakes), but no lifespan runs: no reconciler passes.
    """
    settings, _ = build_settings(data_dir, database_url, "http://testserver", environ=CREDENTIALS_ENV)
    jobs = JobLog()
    app = create_app(settings, dispatcher=jobs)
    services = app.state.services
    await services.bus.start()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client=client, services=services, jobs=jobs)
    await services.bus.close()
    await services.db.close()
    await asyncio.sleep(0)
