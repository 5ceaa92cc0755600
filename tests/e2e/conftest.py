"""A real `recordkit serve` per test module, on SQLite and on PostgreSQL (`served`); and one in a thread of the
test process (`server`, `setup`) for the modules that look inside it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import CREDENTIALS_ENV
from tests.support.postgres import fresh_database
from tests.support.recorder import server, setup  # noqa: F401 (fixtures)
from tests.support.server import Served, recordkit_serve


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The server of a module's tests, once on each database backend (a module may define its own)."""
    data_dir = tmp_path_factory.mktemp("serve") / "data"
    if request.param == "sqlite":
        with recordkit_serve(data_dir, env=CREDENTIALS_ENV) as server:
            yield server
        return
    with (
        fresh_database(request.getfixturevalue("pg_server")) as url,
        recordkit_serve(data_dir, url, CREDENTIALS_ENV) as server,
    ):
        yield server
