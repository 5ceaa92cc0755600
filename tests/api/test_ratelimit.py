"""The optional rate limit (recordings.md §3.2): per verified token, else per client address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from recordkit.api.ratelimit import RateLimiter
from recordkit.app import create_app
from recordkit.config import build_settings
from tests.helpers import API_TOKEN, BASE, CREDENTIALS_ENV, assert_error

PER_MINUTE = 5
RID = "9a7d3e21-5c4b-4f6a-8e2d-1b0c9f8e7d6a"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bursts_up_to_the_limit_then_asks_to_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock)
    assert all(limiter.take("a") is None for _ in range(60))
    wait = limiter.take("a")
    assert wait is not None and 0.9 < wait <= 1.0
    assert limiter.take("b") is None, "each caller has its own bucket"
    clock.now += 1.0
    assert limiter.take("a") is None
    assert limiter.take("a") is not None


def test_the_table_forgets_the_least_recently_seen_caller_first() -> None:
    limiter = RateLimiter(1, FakeClock(), max_callers=3)
    for caller in ("a", "b", "c"):
        assert limiter.take(caller) is None
    assert limiter.take("a") is not None, "a is limited, and now the most recently seen"
    assert limiter.take("d") is None
    assert limiter.take("b") is None, "b, least recently seen, was forgotten: a full bucket again"
    assert limiter.take("a") is not None, "a was kept"


def test_a_flood_of_callers_keeps_only_the_latest() -> None:
    limiter = RateLimiter(1, FakeClock(), max_callers=3)
    for n in range(10_000):
        assert limiter.take(f"forged-{n}") is None
    assert [limiter.take(f"forged-{n}") is None for n in (9_997, 9_998, 9_999)] == [False] * 3
    assert limiter.take("forged-9996") is None, "everyone older was dropped"


@pytest.fixture
async def limited(database_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    env = {**CREDENTIALS_ENV, "RECORDKIT_RATE_LIMIT_PER_MINUTE": str(PER_MINUTE)}
    settings, _ = build_settings(tmp_path, database_url, "http://testserver", environ=env)
    app = create_app(settings)
    yield app
    await app.state.services.db.close()


def client_at(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_tokens_that_do_not_verify_are_limited_by_address(limited: FastAPI) -> None:
    async with client_at(limited, "10.0.0.1") as one, client_at(limited, "10.0.0.2") as two:
        forged = [
            await one.get(f"{BASE}/apps", headers={"Authorization": f"Bearer forged-{n}"}) for n in range(PER_MINUTE)
        ]
        assert [r.status_code for r in forged] == [401] * PER_MINUTE
        response = await one.get(f"{BASE}/apps", headers={"Authorization": "Bearer yet-another-forgery"})
        assert_error(response, 429, "Too many requests")
        assert (await two.get(f"{BASE}/apps", headers={"Authorization": "Bearer forged"})).status_code == 401
        verified = await one.get(f"{BASE}/apps", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert verified.status_code == 200, "a verified token has its own bucket, apart from its address"


async def test_join_routes_are_limited_per_participant_token(limited: FastAPI) -> None:
    api_auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with client_at(limited, "10.0.0.1") as operator, client_at(limited, "10.0.0.3") as browser:
        created = await operator.post(f"{BASE}/apps", json={"name": "Limited"}, headers=api_auth)
        app_id = created.json()["data"]["app"]["id"]
        meeting = (await operator.post(f"{BASE}/{app_id}/meetings", json={}, headers=api_auth)).json()["data"]
        body = {"custom_participant_id": "mary", "preset_name": "group_call_host", "name": "Mary"}
        added = await operator.post(
            f"{BASE}/{app_id}/meetings/{meeting['id']}/participants", json=body, headers=api_auth
        )
        token = added.json()["data"]["token"]
        page = f"/meet/{meeting['id']}"
        answers = [await browser.get(page, params={"authToken": token}) for _ in range(PER_MINUTE + 1)]
        assert [r.status_code for r in answers] == [200] * PER_MINUTE + [429]
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert (await browser.get(page)).status_code == 401, "the address has a bucket of its own"


async def test_signed_downloads_are_limited_by_address(limited: FastAPI) -> None:
    async with client_at(limited, "10.0.0.4") as downloader, client_at(limited, "10.0.0.5") as other:
        answers = [await downloader.get(f"/files/{RID}/talk.mp4?expires=1&signature=0") for _ in range(PER_MINUTE + 1)]
        assert [r.status_code for r in answers] == [403] * PER_MINUTE + [429]
        assert (await other.get(f"/files/{RID}/talk.mp4?expires=1&signature=0")).status_code == 403
        assert (await downloader.get("/healthz")).status_code == 200, "only the API, join and download routes"
