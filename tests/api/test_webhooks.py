"""Webhook registration over HTTP (meetings.md §7.1)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from recordkit.clock import utcnow
from recordkit.db.models import WebhookDelivery, WebhookEvent
from recordkit.webhooks.delivery import prune_deliveries
from tests.helpers import BARE, Api, assert_error

EVENTS = (
    "[meeting.started, meeting.ended, meeting.participantJoined, meeting.participantLeft, meeting.chatSynced, "
    "recording.statusUpdate, livestreaming.statusUpdate, meeting.transcript, meeting.summary]"
)
HOOK = {"name": "Recorder", "url": "https://hooks.example.org/rtk", "events": ["recording.statusUpdate"]}


@pytest.fixture(scope="module")
async def app_id(api: Api) -> str:
    return await api.new_app("Webhooks")


async def create(api: Api, app_id: str, **overrides: Any) -> dict[str, Any]:
    return await api.ok("POST", f"/{app_id}/webhooks", 201, json={**HOOK, **overrides})


async def test_adding_a_webhook_answers_201_enabled_by_default(api: Api, app_id: str) -> None:
    response = await api.call("POST", f"/{app_id}/webhooks", json=HOOK)
    assert response.status_code == 201
    data = response.json()["data"]
    assert set(data) == {"id", "name", "url", "events", "enabled", "created_at", "updated_at"}
    assert {k: data[k] for k in HOOK} == HOOK and data["enabled"] is True
    assert data["created_at"] == data["updated_at"]


async def test_duplicate_events_are_dropped_in_order(api: Api, app_id: str) -> None:
    events = ["meeting.ended", "recording.statusUpdate", "meeting.ended", "meeting.summary", "recording.statusUpdate"]
    hook = await create(api, app_id, events=events, enabled=False)
    assert hook["events"] == ["meeting.ended", "recording.statusUpdate", "meeting.summary"]
    assert hook["enabled"] is False


async def test_loopback_and_private_receivers_are_allowed(api: Api, app_id: str) -> None:
    for url in ("http://127.0.0.1:9000/hook", "http://10.1.2.3/hook", "http://localhost/x?y=1"):
        assert (await create(api, app_id, url=url))["url"] == url


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": None}, '"name" is required'),
        ({"name": ""}, '"name" is not allowed to be empty'),
        ({"name": "n" * 256}, '"name" length must be less than or equal to 255 characters long'),
        ({"url": None}, '"url" is required'),
        ({"url": "hooks.example.org"}, '"url" must be a valid uri'),
        ({"url": "ftp://hooks.example.org/x"}, '"url" must be a valid uri'),
        ({"url": "http:nohost"}, '"url" must be a valid uri'),
        ({"events": None}, '"events" is required'),
        ({"events": []}, '"events" must contain at least 1 items'),
        ({"events": "recording.statusUpdate"}, '"events" must be an array'),
        ({"events": ["recording.statusUpdate", "recording.started"]}, f'"events[1]" must be one of {EVENTS}'),
        ({"enabled": "yes"}, '"enabled" must be a boolean'),
    ],
)
async def test_webhook_field_rules(api: Api, app_id: str, overrides: dict[str, Any], message: str) -> None:
    body = {k: v for k, v in {**HOOK, **overrides}.items() if v is not None}
    assert_error(await api.call("POST", f"/{app_id}/webhooks", json=body), 400, f"BAD_REQUEST: {message}")


async def test_list_returns_every_webhook_of_the_app_without_paging(api: Api) -> None:
    app_id = await api.new_app("Hooks list")
    hooks = [await create(api, app_id, name=f"h{n}") for n in range(3)]
    response = await api.call("GET", f"/{app_id}/webhooks")
    body = response.json()
    assert body["data"] == hooks and "paging" not in body
    other = await api.new_app("No hooks")
    assert await api.ok("GET", f"/{other}/webhooks") == []


async def test_get_and_404s(api: Api, app_id: str) -> None:
    hook = await create(api, app_id)
    assert await api.ok("GET", f"/{app_id}/webhooks/{hook['id']}") == hook
    assert_error(await api.call("GET", f"/{app_id}/webhooks/nope"), 404, "No webhook found with id nope")
    other = await api.new_app("Other")
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        response = await api.call(method, f"/{other}/webhooks/{hook['id']}", json={"name": 5})
        assert_error(response, 404, f"No webhook found with id {hook['id']}")


async def test_patch_changes_only_the_given_fields(api: Api, app_id: str) -> None:
    hook = await create(api, app_id)
    await asyncio.sleep(0.01)
    changed = await api.ok(
        "PATCH", f"/{app_id}/webhooks/{hook['id']}", json={"enabled": False, "events": ["meeting.started"] * 2}
    )
    assert changed["enabled"] is False and changed["events"] == ["meeting.started"]
    assert changed["name"] == hook["name"] and changed["url"] == hook["url"]
    assert changed["updated_at"] > hook["updated_at"] and changed["created_at"] == hook["created_at"]
    response = await api.call("PATCH", f"/{app_id}/webhooks/{hook['id']}", json={"url": "mailto:me@example.org"})
    assert_error(response, 400, 'BAD_REQUEST: "url" must be a valid uri')
    assert await api.ok("GET", f"/{app_id}/webhooks/{hook['id']}") == changed


async def test_put_replaces_the_whole_webhook(api: Api, app_id: str) -> None:
    hook = await create(api, app_id, enabled=False)
    replacement = {"name": "New", "url": "http://new.example.org/", "events": ["meeting.ended"]}
    replaced = await api.ok("PUT", f"/{app_id}/webhooks/{hook['id']}", json=replacement)
    assert {k: replaced[k] for k in replacement} == replacement and replaced["enabled"] is True
    response = await api.call("PUT", f"/{app_id}/webhooks/{hook['id']}", json={"name": "Only a name"})
    assert_error(response, 400, 'BAD_REQUEST: "url" is required')


async def test_delete_answers_the_webhook_as_it_was(api: Api, app_id: str) -> None:
    hook = await create(api, app_id)
    assert await api.ok("DELETE", f"/{app_id}/webhooks/{hook['id']}") == hook
    assert_error(
        await api.call("GET", f"/{app_id}/webhooks/{hook['id']}"), 404, f"No webhook found with id {hook['id']}"
    )
    response = await api.call("DELETE", f"/{app_id}/webhooks/{hook['id']}")
    assert_error(response, 404, f"No webhook found with id {hook['id']}")


async def test_webhooks_are_served_under_both_prefixes(api: Api, app_id: str) -> None:
    hook = await api.ok("POST", f"/{app_id}/webhooks", 201, base=BARE, json=HOOK)
    assert await api.ok("GET", f"/{app_id}/webhooks/{hook['id']}", base=BARE) == hook


async def test_webhook_routes_need_an_api_token(api: Api, app_id: str) -> None:
    hook = await create(api, app_id)
    meeting = await api.new_meeting(app_id)
    token = (await api.new_participant(app_id, meeting["id"]))["token"]
    for method, route in [
        ("POST", f"/{app_id}/webhooks"),
        ("GET", f"/{app_id}/webhooks"),
        ("GET", f"/{app_id}/webhooks/{hook['id']}"),
        ("PATCH", f"/{app_id}/webhooks/{hook['id']}"),
        ("PUT", f"/{app_id}/webhooks/{hook['id']}"),
        ("DELETE", f"/{app_id}/webhooks/{hook['id']}"),
    ]:
        assert_error(
            await api.call(method, route, token=token, json=HOOK),
            403,
            "Participant is not allowed to perform this action",
        )
        assert_error(await api.call(method, route, token=None, json=HOOK), 401, "Unauthorized")
    assert_error(await api.call("GET", "/ghost/webhooks"), 404, "No app found with id ghost")


async def test_deliveries_are_queued_per_listening_webhook_and_pruned_once_old(api: Api) -> None:
    app_id = await api.new_app("Deliveries")
    listening = await create(api, app_id)
    await create(api, app_id, events=["meeting.ended"])  # not listening to status updates
    await create(api, app_id, enabled=False)
    meeting = await api.new_meeting(app_id)
    await api.ok("POST", f"/{app_id}/recordings", json={"meeting_id": meeting["id"]})
    page = await api.call("GET", f"/{app_id}/webhooks/{listening['id']}/deliveries")
    (delivery,) = page.json()["data"]
    assert delivery["event"] == "recording.statusUpdate" and delivery["status"] == "PENDING"
    assert (delivery["attempts"], delivery["last_status_code"], delivery["finished_at"]) == (0, None, None)
    missing = await api.call("GET", f"/{app_id}/webhooks/{'0' * 8}-0000-4000-8000-{'0' * 12}/deliveries")
    assert missing.status_code == 404

    db = api.services.db
    async with db.write() as session:
        row = await session.get(WebhookDelivery, delivery["id"])
        assert row is not None
        row.status, row.finished_at = "DELIVERED", utcnow() - timedelta(days=8)
        event_id = row.event_id
        event = await session.get(WebhookEvent, event_id)
        assert event is not None
        event.created_at = utcnow() - timedelta(days=8)
    waiting = await api.new_meeting(app_id)
    await api.ok("POST", f"/{app_id}/recordings", json={"meeting_id": waiting["id"]})
    async with db.write() as session:
        pending = (await session.execute(select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(1))).scalar_one()
        pending.created_at = utcnow() - timedelta(days=8)  # old, but its delivery has not ended
    await prune_deliveries(db, timedelta(days=7))
    async with db.read() as session:
        assert await session.get(WebhookDelivery, delivery["id"]) is None
        assert await session.get(WebhookEvent, event_id) is None
        assert await session.get(WebhookEvent, pending.id) is not None
