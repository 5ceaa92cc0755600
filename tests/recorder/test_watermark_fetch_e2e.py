"""A watermark URL that leads inside recordkit's own networks is never fetched and the recording goes on
without it; one the operator allows is fetched and drawn (issue 10, acceptance 3). Real recordings of a bot,
real HTTP servers on loopback that count what they are asked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.recorder.origin import Origin
from tests.recorder.test_composite_e2e import bots, download, last_picture_red, png_square, until_status
from tests.support.media import Setup, ThreadServer, serve_in_thread

Served = tuple[ThreadServer, Setup]


def served_with(tmp_path_factory: pytest.TempPathFactory, allow: str) -> Iterator[Served]:
    environ = {"RECORDKIT_FETCH_ALLOW": allow}
    with serve_in_thread(tmp_path_factory.mktemp("fetch-allow"), environ=environ) as server:
        setup = Setup(server.base_url)
        yield server, setup
        setup.close()


@pytest.fixture(scope="module")
def allows_one_hop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """recordkit that may fetch from 127.0.0.2 and nowhere else inside: a hop there is followed, then checked."""
    yield from served_with(tmp_path_factory, "127.0.0.2/32")


@pytest.fixture(scope="module")
def allows_loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from served_with(tmp_path_factory, "127.0.0.0/8")


async def record_with_watermark(served: Served, url: str, tmp_path: Path) -> np.ndarray:
    """Record a bot for 3 s in VP8 640x360 with a 96 px watermark from `url` in the right bottom corner;
    the mask of the red pixels of the uploaded file's last picture."""
    server, setup = served
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    watermark = {"url": url, "size": {"width": 96}, "position": "right bottom"}
    body = {
        "meeting_id": meeting_id,
        "video_config": {"codec": "VP8", "width": 640, "height": 360, "watermark": watermark},
    }
    async with bots(server, setup, app_id, meeting_id, ["Solo"]):
        data = await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings", json=body)
        assert (await until_status(setup, app_id, data["id"], {"RECORDING"}))["status"] == "RECORDING"
        await asyncio.sleep(3)
        await asyncio.to_thread(setup.data, "PUT", f"/{app_id}/recordings/{data['id']}", json={"action": "stop"})
    done = await until_status(setup, app_id, data["id"], {"UPLOADED", "ERRORED"})
    assert done["status"] == "UPLOADED", done
    return last_picture_red(await download(done["download_url"], tmp_path / done["output_file_name"]))


async def test_a_watermark_on_loopback_or_redirected_there_is_never_fetched(
    allows_one_hop: Served, tmp_path: Path
) -> None:
    with Origin("127.0.0.1") as inside, Origin("127.0.0.2") as hop:
        direct = inside.serve("/logo.png", png_square((255, 0, 0)))
        redirected = hop.redirect("/logo.png", direct)
        for url in (direct, redirected):
            red = await record_with_watermark(allows_one_hop, url, tmp_path)
            assert red[-96:, -96:].mean() < 0.05, f"no watermark from {url}"
    assert inside.requests == [], "127.0.0.1 never asked, neither directly nor through the redirect"
    assert [path for path, _ in hop.requests] == ["/logo.png"], "the allowed hop was asked, once"


async def test_an_allowed_loopback_watermark_is_fetched_and_drawn(allows_loopback: Served, tmp_path: Path) -> None:
    with Origin("127.0.0.1") as inside:
        url = inside.serve("/logo.png", png_square((255, 0, 0)))
        red = await record_with_watermark(allows_loopback, url, tmp_path)
    assert [path for path, _ in inside.requests] == ["/logo.png"]
    assert red[-96:, -90:].mean() > 0.9, "a red square in the right bottom corner"
    assert red[:-100, -90:].mean() < 0.5, "nothing above it"
