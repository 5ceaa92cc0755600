"""Headless Chromium joining meetings through the join page, for the browser tests and the join bench.

Debian's Chromium (`/usr/bin/chromium`, installed by scripts/setup.sh) with a fake camera and microphone,
driven by playwright against a real `recordkit serve`. Playwright never downloads a browser here.

`join_round` is one round as a new user tries it: two pages and a bot join one fresh meeting at once,
and each page is timed from the moment everyone is connected until it has decoded every remote video.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, async_playwright

from recordkit.bot.client import join
from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock, SyntheticVideoTrack
from tests.helpers import API_TOKEN, BASE

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
STATS_POLL_S = 0.05


@dataclass(frozen=True)
class Person:
    """A participant of a test meeting."""

    name: str
    id: str
    token: str


@contextlib.asynccontextmanager
async def chromium(profile_dir: Path) -> AsyncIterator[BrowserContext]:
    """One headless Chromium with a fresh profile; each page in it is one participant."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            profile_dir, executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True, viewport=VIEWPORT
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
        await asyncio.sleep(STATS_POLL_S)


async def open_meeting(browser: BrowserContext, base_url: str, meeting_id: str, person: Person) -> Page:
    """Open the join page as `person` and wait until their connection is up."""
    page = await browser.new_page()
    await enter(page, base_url, meeting_id, person)
    return page


async def enter(page: Page, base_url: str, meeting_id: str, person: Person) -> None:
    """Load the join page in `page` as `person` and wait until their connection is up."""
    await page.goto(f"{base_url}/meet/{meeting_id}?authToken={person.token}")
    settled = "['joined', 'failed'].includes(window.recordkit?.state) && window.recordkit.state"
    state = await wait_for(page, settled, JOIN_TIMEOUT_S, f"{person.name} joins")
    assert state == "joined", f"{person.name} could not join: {await page.text_content('#error')}"


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
        await asyncio.sleep(STATS_POLL_S)


@dataclass(frozen=True)
class PageResult:
    """One page of a round: how long after everyone was connected it had decoded every remote video
    (None: not within the round's patience), and its stats when the round ended."""

    name: str
    all_remotes_s: float | None
    stats: dict[str, Any]


@dataclass(frozen=True)
class RoundResult:
    pages: list[PageResult]

    @property
    def worst_s(self) -> float | None:
        """The slowest page's time, None when a page never decoded every remote video."""
        times = [page.all_remotes_s for page in self.pages]
        return None if None in times else max(t for t in times if t is not None)

    def describe(self) -> str:
        """One line per page: its time, or what it received from whom (for a failed round)."""
        lines = []
        for page in self.pages:
            if page.all_remotes_s is not None:
                lines.append(f"{page.name} {page.all_remotes_s:.2f} s")
                continue
            received = [
                f"{s['kind']} from {s['name']}: {s['packetsReceived']} packets, {s['framesDecoded']} frames"
                for s in page.stats.get("inbound", [])
            ]
            lines.append(f"{page.name} never decoded every remote video ({'; '.join(received)})")
        return "; ".join(lines)


async def join_round(browser: BrowserContext, base_url: str, patience_s: float) -> RoundResult:
    """Two pages (Ada, Grace) and a bot join a new meeting at once; each page is timed from the moment
    the last of the three is connected until it has decoded video from both others, waiting at most
    `patience_s` after that moment."""
    meeting_id, people = new_meeting(base_url, ["Ada", "Grace", "Bot"])
    viewers = [people["Ada"], people["Grace"]]
    clock = SyntheticClock()
    media = {"audio": SyntheticAudioTrack(clock), "video": SyntheticVideoTrack(clock, label="Bot")}

    async def page_joins(page: Page, person: Person) -> float:
        await enter(page, base_url, meeting_id, person)
        return time.time()

    async def bot_joins(stack: contextlib.AsyncExitStack) -> float:
        await stack.enter_async_context(join(base_url, meeting_id, people["Bot"].token, **media, receive_video=2))
        return time.time()

    async with contextlib.AsyncExitStack() as stack:
        pages = [await browser.new_page() for _ in viewers]
        for page in pages:
            stack.push_async_callback(page.close)
        async with asyncio.TaskGroup() as group:
            joins = [group.create_task(page_joins(page, person)) for page, person in zip(pages, viewers, strict=True)]
            joins.append(group.create_task(bot_joins(stack)))
        everyone_s = max(joined.result() for joined in joins)

        async def time_page(page: Page, viewer: Person) -> PageResult:
            senders = [person for person in people.values() if person is not viewer]
            while True:
                decoded = await decoded_video(page)
                seen_s = time.time()
                if all(decoded.get(sender.id, 0) > 0 for sender in senders):
                    return PageResult(viewer.name, max(0.0, seen_s - everyone_s), {})
                if seen_s - everyone_s > patience_s:
                    return PageResult(viewer.name, None, await page.evaluate("window.recordkit.stats()"))
                await asyncio.sleep(STATS_POLL_S)

        results = await asyncio.gather(*(time_page(page, viewer) for page, viewer in zip(pages, viewers, strict=True)))
    return RoundResult(list(results))
