"""Browser end-to-end (issue 4, acceptance 2): two headless Chromium pages and a bot in one meeting
(`tests/support/browser.py` drives them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from playwright.async_api import BrowserContext, Page

from recordkit.bot.client import JoinedPeer, join
from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock, SyntheticVideoTrack
from tests.helpers import CREDENTIALS_ENV
from tests.support.browser import (
    CHROMIUM,
    MEDIA_TIMEOUT_S,
    Person,
    chromium,
    new_meeting,
    open_meeting,
    wait_for,
    wait_for_video_from,
)
from tests.support.server import Served, recordkit_serve

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium (scripts/setup.sh installs it)"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with recordkit_serve(tmp_path_factory.mktemp("browser") / "data", env=CREDENTIALS_ENV) as server:
        yield server


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    async with chromium(tmp_path / "chromium-profile") as context:
        yield context


# The remote tiles a person sees: visible, with a name, and whether their video is playing.
VISIBLE_TILES = """() => [...document.querySelectorAll('.tile.remote:not([hidden])')].map((tile) => {
  const video = tile.querySelector('video');
  return {
    name: tile.querySelector('figcaption').textContent,
    playing: video.videoWidth > 0 && video.currentTime > 0,
    box: tile.getBoundingClientRect().toJSON(),
  };
})"""
ALL_TILES_PLAYING = f"""(count) => {{
  const tiles = ({VISIBLE_TILES})();
  return tiles.length === count && tiles.every((t) => t.playing) && tiles;
}}"""


async def wait_for_tiles(page: Page, names: set[str], viewer: str) -> list[dict[str, Any]]:
    """Wait until the page shows exactly one playing tile per name; returns the tiles."""
    try:
        tiles: list[dict[str, Any]] = await wait_for(
            page, ALL_TILES_PLAYING, MEDIA_TIMEOUT_S, f"{viewer} sees {names}", arg=len(names)
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; tiles: {await page.evaluate(VISIBLE_TILES)}") from None
    assert {tile["name"] for tile in tiles} == names
    return tiles


def lit_fraction(screenshot: Path, box: dict[str, float]) -> float:
    """The fraction of pixels inside `box` (CSS px, device scale 1) that are clearly not black."""
    with av.open(str(screenshot)) as container:
        rgb = next(container.decode(video=0)).to_ndarray(format="rgb24")
    inset = 8  # stay clear of the rounded corners
    top, left = int(box["top"]) + inset, int(box["left"]) + inset
    region = rgb[top : int(box["bottom"]) - inset, left : int(box["right"]) - inset]
    return float(np.mean(region.max(axis=2) > 40))


async def wait_for_bot_frames(peer: JoinedPeer, senders: list[Person]) -> None:
    """Wait until the bot has received video frames from every sender."""
    deadline = time.monotonic() + MEDIA_TIMEOUT_S
    for sender in senders:
        remote = await peer.wait_for_remote("video", sender.id, timeout_s=MEDIA_TIMEOUT_S)
        while remote.frames_received == 0:
            assert time.monotonic() < deadline, f"the bot received no video frame from {sender.name}"
            await asyncio.sleep(0.1)


async def test_two_pages_and_a_bot_see_each_other(served: Served, browser: BrowserContext, tmp_path: Path) -> None:
    meeting_id, people = new_meeting(served.base_url, ["Ada", "Grace", "Bot"])
    ada, grace, bot = people["Ada"], people["Grace"], people["Bot"]
    asked_for_slots: list[str] = []
    browser.on("request", lambda request: "/slots" in request.url and asked_for_slots.append(request.url))

    ada_page = await open_meeting(browser, served.base_url, meeting_id, ada)
    grace_page = await open_meeting(browser, served.base_url, meeting_id, grace)
    await wait_for_video_from(ada_page, [grace], "Ada")
    await wait_for_video_from(grace_page, [ada], "Grace")

    clock = SyntheticClock()
    media = {"audio": SyntheticAudioTrack(clock), "video": SyntheticVideoTrack(clock, label="Bot")}
    async with join(served.base_url, meeting_id, bot.token, **media, receive_video=2) as bot_peer:
        await wait_for_video_from(ada_page, [grace, bot], "Ada")
        await wait_for_video_from(grace_page, [ada, bot], "Grace")
        await wait_for_bot_frames(bot_peer, [ada, grace])

        tiles = await wait_for_tiles(ada_page, {"Grace", "Bot"}, "Ada")
        screenshot = tmp_path / "meet-ada.png"
        await ada_page.screenshot(path=screenshot)
        print(f"screenshot: {screenshot}")
        for tile in tiles:
            assert lit_fraction(screenshot, tile["box"]) > 0.5, f"{tile['name']}'s tile is black in {screenshot}"

        # Leaving frees Ada's place on the others' screens.
        await ada_page.click("#leave")
        assert await ada_page.evaluate("window.recordkit.state") == "left"
        await wait_for_tiles(grace_page, {"Bot"}, "Grace after Ada left")

    # Arrivals and departures were pushed: each page opened the slot stream once and never polled.
    peer_ids = [await page.evaluate("window.recordkit.peerId") for page in (ada_page, grace_page)]
    streams = [f"{served.base_url}/meet/{meeting_id}/peers/{peer_id}/slots/events" for peer_id in peer_ids]
    assert sorted(asked_for_slots) == sorted(streams)
