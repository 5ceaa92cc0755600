"""A recordkit served from a thread on loopback for the media tests, and REST setup against it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from recordkit.bot.client import RemoteTrack
from recordkit.meetings.media.reading import TimedFrame
from tests.support.media import Setup, ThreadServer, serve_in_thread


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    with serve_in_thread(tmp_path_factory.mktemp("media") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def setup(served: ThreadServer) -> Iterator[Setup]:
    rest = Setup(served.base_url)
    yield rest
    rest.close()


async def decoded(remote: RemoteTrack, count: int, timeout_s: float = 10.0) -> list[TimedFrame]:
    """The next `count` decoded frames of a remote track."""

    async def read() -> list[TimedFrame]:
        frames = []
        async with remote.frames() as reader:
            async for frame in reader:
                frames.append(frame)
                if len(frames) == count:
                    break
        return frames

    return await asyncio.wait_for(read(), timeout_s)


async def keeps_receiving(remote: RemoteTrack, frames: int = 5, timeout_s: float = 5.0) -> bool:
    """Whether `frames` more frames arrive on the remote track within the timeout."""
    start = remote.frames_received
    deadline = asyncio.get_running_loop().time() + timeout_s
    while remote.frames_received < start + frames:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
