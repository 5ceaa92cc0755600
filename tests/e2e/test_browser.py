"""Browser end-to-end (issue 4, acceptance 2): two headless Chromium pages and a bot in one meeting.

Debian's Chromium (`/usr/bin/chromium`, installed by scripts/setup.sh) with fake camera and microphone,
driven by playwright against a real `recordkit serve`. Playwright never downloads a browser here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from recordkit.bot.client import JoinedPeer, join
from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock, SyntheticVideoTrack
from tests.helpers import API_TOKEN, BASE, CREDENTIALS_ENV
from tests.support.server import Served, recordkit_serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 720}
JOIN_TIMEOUT_S = 15.0
MEDIA_TIMEOUT_S = 15.0

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium (scripts/setup.sh installs it)"
)


@dataclass(frozen=True)
class Person:
    """A participant of the test meeting."""

    name: str
    id: str
    token: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with recordkit_serve(tmp_path_factory.mktemp("browser") / "data", env=CREDENTIALS_ENV) as server:
        yield server


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """One headless Chromium with a fresh profile; each page in it is one participant."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport=VIEWPORT,
        )
        try:
            yield context
        finally:
            await context.close()


def new_meeting(base_url: str, names: list[str]) -> tuple[str, dict[str, Person]]:
    """A meeting with one group_call_host participant per name, made over the REST API."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with httpx.Client(base_url=base_url + BASE, headers=headers) as rest:
        app_id = rest.post("/apps", json={"name": "Browser e2e"}).json()["data"]["app"]["id"]
        meeting_id = rest.post(f"/{app_id}/meetings", json={"title": "Browser e2e"}).json()["data"]["id"]
        people = {}
        for name in names:
            body = {"custom_participant_id": f"user-{name}", "preset_name": "group_call_host", "name": name}
            added = rest.post(f"/{app_id}/meetings/{meeting_id}/participants", json=body).json()["data"]
            people[name] = Person(name=name, id=added["id"], token=added["token"])
    return meeting_id, people


async def wait_for(page: Page, expression: str, timeout_s: float, what: str, arg: Any = None) -> Any:
    """Poll a page expression (or function of `arg`) until it is truthy. Polled from here because the page's
    CSP forbids the eval that `page.wait_for_function` relies on."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await page.evaluate(expression, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            state = await page.evaluate("[window.recordkit?.state, document.getElementById('error').textContent]")
            raise AssertionError(f"{what}: not within {timeout_s} s (page state, error: {state})")
        await asyncio.sleep(0.2)


async def open_meeting(browser: BrowserContext, base_url: str, meeting_id: str, person: Person) -> Page:
    """Open the join page as `person` and wait until their connection is up."""
    page = await browser.new_page()
    await page.goto(f"{base_url}/meet/{meeting_id}?authToken={person.token}")
    settled = "['joined', 'failed'].includes(window.recordkit?.state) && window.recordkit.state"
    state = await wait_for(page, settled, JOIN_TIMEOUT_S, f"{person.name} joins")
    assert state == "joined", f"{person.name} could not join: {await page.text_content('#error')}"
    return page


async def decoded_video(page: Page) -> dict[str, int]:
    """Frames of video decoded so far on this page, per sending participant id."""
    stats = await page.evaluate("window.recordkit.stats()")
    return {
        s["participantId"]: s["framesDecoded"]
        for s in stats["inbound"]
        if s["kind"] == "video" and s["participantId"] is not None
    }


async def wait_for_video_from(page: Page, senders: list[Person], viewer: str) -> dict[str, int]:
    """Wait until the page has decoded video from every sender; returns frames decoded per sender id."""
    deadline = time.monotonic() + MEDIA_TIMEOUT_S
    while True:
        decoded = await decoded_video(page)
        if all(decoded.get(s.id, 0) > 0 for s in senders):
            return decoded
        if time.monotonic() > deadline:
            names = {s.id: s.name for s in senders}
            seen = {names.get(pid, pid): frames for pid, frames in decoded.items()}
            raise AssertionError(f"{viewer} decoded no video from some of {list(names.values())}: {seen}")
        await asyncio.sleep(0.25)


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
