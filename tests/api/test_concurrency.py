"""Concurrent calls never break the rules (issue 3, acceptance 4), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from recordkit.db.models import Recording, WebhookEvent
from tests.helpers import Api

LEGAL_AFTER_RACE = {"PAUSED", "RECORDING", "UPLOADING"}


async def test_fifty_parallel_starts_create_exactly_one_recording(api: Api) -> None:
    app_id = await api.new_app("race")
    meeting = await api.new_meeting(app_id)
    responses = await asyncio.gather(
        *(api.call("POST", f"/{app_id}/recordings", json={"meeting_id": meeting["id"]}) for _ in range(50))
    )
    assert Counter(r.status_code for r in responses) == {200: 1, 409: 49}
    async with api.services.db.read() as session:
        rows = (await session.execute(select(Recording).where(Recording.meeting_id == meeting["id"]))).scalars().all()
    assert len(rows) == 1 and rows[0].status == "INVOKED"


async def test_parallel_opted_in_starts_all_succeed(api: Api) -> None:
    app_id = await api.new_app("race-multi")
    meeting = await api.new_meeting(app_id)
    body = {"meeting_id": meeting["id"], "allow_multiple_recordings": True}
    responses = await asyncio.gather(*(api.call("POST", f"/{app_id}/recordings", json=body) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10


async def test_parallel_stops_and_pauses_leave_a_legal_state(api: Api) -> None:
    app_id = await api.new_app("race-actions")
    for _ in range(3):
        meeting = await api.new_meeting(app_id)
        rid = (await api.ok("POST", f"/{app_id}/recordings", json={"meeting_id": meeting["id"]}))["id"]
        await api.services.reports.capture_started(rid)
        actions = ["stop"] * 10 + ["pause"] * 10 + ["resume"] * 10
        responses = await asyncio.gather(
            *(api.call("PUT", f"/{app_id}/recordings/{rid}", json={"action": action}) for action in actions)
        )
        outcomes = Counter((action, r.status_code) for action, r in zip(actions, responses, strict=True))
        assert outcomes[("stop", 200)] == 1, outcomes
        assert all(status in (200, 409) for _, status in outcomes)
        async with api.services.db.read() as session:
            row = await session.get(Recording, rid)
            events = await session.scalar(select(func.count()).where(WebhookEvent.recording_id == rid))
        assert row is not None and row.status == "UPLOADING" and row.stopped_time is not None
        assert row.paused_at is None
        succeeded = sum(1 for (_, status), count in outcomes.items() if status == 200 for _ in range(count))
        assert events == 2 + succeeded, "one event per change: INVOKED, RECORDING, then each winning action"
        assert {r.json()["data"]["status"] for r in responses if r.status_code == 200} <= LEGAL_AFTER_RACE
