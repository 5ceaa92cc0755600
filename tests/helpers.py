"""Helpers for API tests: authenticated calls and quick creation of apps, meetings and participants."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.jobs.dispatcher import Job

API_TOKEN = "rk_test_token_0123456789abcdef"
ACCOUNT_ID = "7c9e4a1b2d3f4e5a8b6c0d1e2f3a4b5c"
BASE = f"/client/v4/accounts/{ACCOUNT_ID}/realtime/kit"
# What a recordkit process needs in its environment to use the tests' token and account.
CREDENTIALS_ENV = {"RECORDKIT_API_TOKEN": API_TOKEN, "RECORDKIT_ACCOUNT_ID": ACCOUNT_ID}
BARE = f"/accounts/{ACCOUNT_ID}/realtime/kit"


class JobLog:
    """A dispatcher that keeps the jobs it is given instead of running them (jobs of rolled-back
    transactions included: tests look at what was asked, not at what committed)."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    async def submit(self, session: AsyncSession, job: Job) -> None:
        self.jobs.append(job)

    async def pending(
        self, session: AsyncSession, kinds: Iterable[str], *, running: bool = True
    ) -> set[tuple[str, str]]:
        return {(job.kind, job.recording_id) for job in self.jobs if job.kind in set(kinds)}


@dataclass
class Api:
    """An httpx client bound to one recordkit app, plus the app's services for white-box setup."""

    client: httpx.AsyncClient
    services: Any
    jobs: JobLog

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_TOKEN}"}

    async def call(
        self, method: str, path: str, *, token: str | None = API_TOKEN, base: str = BASE, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        return await self.client.request(method, base + path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        """Call and return `data`, asserting the status and the envelope."""
        response = await self.call(method, path, **kwargs)
        assert response.status_code == status, response.text
        body = response.json()
        assert body["success"] is True and body["data"] == body["result"], body
        return body["data"]

    async def new_app(self, name: str = "Acme") -> str:
        return (await self.ok("POST", "/apps", 201, json={"name": name}))["app"]["id"]

    async def new_meeting(self, app_id: str, **fields: Any) -> dict[str, Any]:
        return await self.ok("POST", f"/{app_id}/meetings", 201, json=fields)

    async def new_participant(
        self, app_id: str, meeting_id: str, preset_name: str = "group_call_host", name: str = "Mary"
    ) -> dict[str, Any]:
        body = {"custom_participant_id": f"user-{name}", "preset_name": preset_name, "name": name}
        return await self.ok("POST", f"/{app_id}/meetings/{meeting_id}/participants", 201, json=body)


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    """Assert the RealtimeKit error envelope with this status and message."""
    assert response.status_code == status, response.text
    body = response.json()
    item = {"code": status, "message": message}
    assert body == {"success": False, "error": item, "errors": [item], "messages": [], "result": None}, body
