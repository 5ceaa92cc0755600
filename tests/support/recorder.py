"""A recordkit served from a thread on loopback for the recorder tests of a module, and REST setup against it.

The fixtures of tests/recording/ and tests/recorder/: each conftest imports them from here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.media import Setup, ThreadServer, serve_in_thread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    with serve_in_thread(tmp_path_factory.mktemp("recorder")) as served:
        yield served


@pytest.fixture(scope="module")
def setup(server: ThreadServer) -> Iterator[Setup]:
    api = Setup(server.base_url)
    yield api
    api.close()
