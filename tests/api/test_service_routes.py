"""Routes outside the RealtimeKit prefixes, and what happens when something breaks inside."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from tests.helpers import Api, assert_error


async def test_healthz_and_openapi_describe_every_route(api: Api) -> None:
    assert (await api.client.get("/healthz")).status_code == 200
    document = (await api.client.get("/openapi.json")).json()
    paths = set(document["paths"])
    for prefix in ("/client/v4/accounts/{account_id}/realtime/kit", "/accounts/{account_id}/realtime/kit"):
        for route in (
            "/{app_id}/recordings",
            "/{app_id}/recordings/active-recording/{meeting_id}",
            "/{app_id}/recordings/track",
            "/{app_id}/recordings/{recording_id}",
            "/apps",
            "/{app_id}/meetings",
            "/{app_id}/meetings/{meeting_id}/participants",
            "/{app_id}/sessions",
            "/{app_id}/webhooks",
            "/{app_id}/presets",
        ):
            assert prefix + route in paths
    assert not any("422" in op.get("responses", {}) for ops in document["paths"].values() for op in ops.values())


async def test_unexpected_failure_answers_500_without_details(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    app_id = await api.new_app("broken")
    async with api.services.db.write() as session:
        await session.execute(text("ALTER TABLE webhook_events RENAME TO webhook_events_away"))
    try:
        meeting = await api.new_meeting(app_id)
        with caplog.at_level(logging.ERROR):
            response = await api.call("POST", f"/{app_id}/recordings", json={"meeting_id": meeting["id"]})
        assert_error(response, 500, "Internal server error")
        assert "webhook_events" not in response.text
        assert any("unexpected failure" in record.message for record in caplog.records)
        listed = await api.ok("GET", f"/{app_id}/recordings", params={"meeting_id": meeting["id"]})
        assert listed == [], "the failed start left nothing behind"
    finally:
        async with api.services.db.write() as session:
            await session.execute(text("ALTER TABLE webhook_events_away RENAME TO webhook_events"))
