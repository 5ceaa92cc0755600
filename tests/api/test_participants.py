"""Participants over HTTP (meetings.md §5): add, list, edit, delete, tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
import pytest

from recordkit.db.models import MeetingSession, SessionPeer
from recordkit.meetings.sessions import peer_joined
from tests.helpers import ACCOUNT_ID, BARE, Api, assert_error

PRESETS = "[group_call_host, group_call_participant, webinar_presenter, webinar_viewer]"
FORBIDDEN = "Participant is not allowed to perform this action"


@pytest.fixture(scope="module")
async def app_id(api: Api) -> str:
    return await api.new_app("Participants")


@pytest.fixture
async def meeting_id(api: Api, app_id: str) -> str:
    return (await api.new_meeting(app_id, title="Standup"))["id"]


def path(app_id: str, meeting_id: str, *rest: str) -> str:
    return "/".join([f"/{app_id}/meetings/{meeting_id}/participants", *rest])


async def add(api: Api, app_id: str, meeting_id: str, **body: Any) -> Any:
    return await api.call("POST", path(app_id, meeting_id), json=body)


async def token_works(api: Api, token: str) -> bool:
    """Whether recordkit still accepts the token: refused for this route (403), not unknown (401)."""
    response = await api.call("GET", "/apps", token=token)
    assert response.status_code in (401, 403), response.text
    return response.status_code == 403


async def test_adding_a_participant_answers_201_with_a_token(api: Api, app_id: str, meeting_id: str) -> None:
    response = await add(
        api, app_id, meeting_id, custom_participant_id="user-123", preset_name="group_call_host", name="Mary Sue"
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert set(data) == {
        "id", "name", "picture", "custom_participant_id", "preset_name", "token", "created_at", "updated_at"
    }  # fmt: skip
    assert data["name"] == "Mary Sue" and data["picture"] is None
    assert data["custom_participant_id"] == "user-123" and data["preset_name"] == "group_call_host"
    claims = jwt.decode(data["token"], options={"verify_signature": False})
    assert claims["meetingId"] == meeting_id and claims["participantId"] == data["id"] and claims["appId"] == app_id
    assert round((claims["exp"] - claims["iat"]) / 86400) == 100
    assert await token_works(api, data["token"])


async def test_the_token_never_appears_outside_add_and_refresh(api: Api, app_id: str, meeting_id: str) -> None:
    added = await api.new_participant(app_id, meeting_id)
    one = await api.ok("GET", path(app_id, meeting_id, added["id"]))
    assert "token" not in one and one == {k: v for k, v in added.items() if k != "token"}
    assert [p for p in await api.ok("GET", path(app_id, meeting_id)) if "token" in p] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"preset_name": "group_call_host"}, '"custom_participant_id" is required'),
        (
            {"custom_participant_id": "", "preset_name": "group_call_host"},
            '"custom_participant_id" is not allowed to be empty',
        ),
        ({"custom_participant_id": 12, "preset_name": "group_call_host"}, '"custom_participant_id" must be a string'),
        (
            {"custom_participant_id": "u" * 256, "preset_name": "group_call_host"},
            '"custom_participant_id" length must be less than or equal to 255 characters long',
        ),
        ({"custom_participant_id": "u"}, '"preset_name" is required'),
        ({"custom_participant_id": "u", "preset_name": "admin"}, f'"preset_name" must be one of {PRESETS}'),
        (
            {"custom_participant_id": "u", "preset_name": "group_call_host", "name": "n" * 256},
            '"name" length must be less than or equal to 255 characters long',
        ),
        (
            {"custom_participant_id": "u", "preset_name": "group_call_host", "picture": "me.png"},
            '"picture" must be a valid uri',
        ),
        (
            {"custom_participant_id": "u", "preset_name": "group_call_host", "picture": "ftp://x.org/me.png"},
            '"picture" must be a valid uri',
        ),
    ],
)
async def test_add_field_rules(api: Api, app_id: str, meeting_id: str, body: dict[str, Any], message: str) -> None:
    assert_error(await add(api, app_id, meeting_id, **body), 400, f"BAD_REQUEST: {message}")


async def test_name_and_picture_are_optional_and_ids_may_repeat(api: Api, app_id: str, meeting_id: str) -> None:
    first = (await add(api, app_id, meeting_id, custom_participant_id="same", preset_name="webinar_viewer")).json()
    second = await add(
        api, app_id, meeting_id, custom_participant_id="same", preset_name="webinar_viewer",
        name=None, picture="https://example.org/me.png",
    )  # fmt: skip
    assert second.status_code == 201
    assert first["data"]["name"] is None and first["data"]["picture"] is None
    assert second.json()["data"]["picture"] == "https://example.org/me.png"
    assert first["data"]["id"] != second.json()["data"]["id"]


async def test_list_is_oldest_first_and_paged(api: Api, app_id: str, meeting_id: str) -> None:
    ids = [(await api.new_participant(app_id, meeting_id, name=f"p{n}"))["id"] for n in range(3)]
    body = (await api.call("GET", path(app_id, meeting_id), params={"per_page": 2, "page_no": 2})).json()
    assert [p["id"] for p in body["data"]] == [ids[2]]
    assert body["paging"] == {"total_count": 3, "start_offset": 3, "end_offset": 3}
    assert [p["id"] for p in await api.ok("GET", path(app_id, meeting_id))] == ids
    response = await api.call("GET", path(app_id, meeting_id), params={"page_no": -2})
    assert_error(response, 400, 'BAD_REQUEST: "page_no" must be greater than or equal to 0')


async def test_participants_belong_to_one_meeting(api: Api, app_id: str, meeting_id: str) -> None:
    other = (await api.new_meeting(app_id))["id"]
    mine = await api.new_participant(app_id, meeting_id)
    assert await api.ok("GET", path(app_id, other)) == []
    for method in ("GET", "PATCH", "DELETE"):
        response = await api.call(method, path(app_id, other, mine["id"]), json={})
        assert_error(response, 404, f"No participant found with id {mine['id']}")
    response = await api.call("POST", path(app_id, other, mine["id"], "token"))
    assert_error(response, 404, f"No participant found with id {mine['id']}")


async def test_unknown_meeting_or_participant_is_404_before_the_body_is_read(
    api: Api, app_id: str, meeting_id: str
) -> None:
    assert_error(await add(api, app_id, "nope", preset_name=1), 404, "No meeting found with id nope")
    assert_error(await api.call("GET", path(app_id, "nope")), 404, "No meeting found with id nope")
    response = await api.call("PATCH", path(app_id, meeting_id, "ghost"), json={"name": 5})
    assert_error(response, 404, "No participant found with id ghost")
    assert_error(await api.call("GET", path("ghost-app", meeting_id)), 404, "No app found with id ghost-app")


async def test_edit_changes_only_the_given_fields(api: Api, app_id: str, meeting_id: str) -> None:
    added = await api.new_participant(app_id, meeting_id, name="Before")
    await asyncio.sleep(0.01)
    edited = await api.ok(
        "PATCH",
        path(app_id, meeting_id, added["id"]),
        json={"preset_name": "webinar_viewer", "picture": "http://a.b/c"},
    )
    assert edited["name"] == "Before" and edited["preset_name"] == "webinar_viewer"
    assert edited["picture"] == "http://a.b/c"
    assert edited["created_at"] == added["created_at"] and edited["updated_at"] > added["updated_at"]
    cleared = await api.ok("PATCH", path(app_id, meeting_id, added["id"]), json={"name": None})
    assert cleared["name"] is None and cleared["picture"] == "http://a.b/c"
    response = await api.call("PATCH", path(app_id, meeting_id, added["id"]), json={"preset_name": "boss"})
    assert_error(response, 400, f'BAD_REQUEST: "preset_name" must be one of {PRESETS}')


async def test_deleting_a_participant_answers_what_was_deleted(api: Api, app_id: str, meeting_id: str) -> None:
    added = await api.new_participant(app_id, meeting_id)
    presets = {p["name"]: p["id"] for p in await api.ok("GET", f"/{app_id}/presets")}
    deleted = await api.ok("DELETE", path(app_id, meeting_id, added["id"]))
    assert deleted == {
        "created_at": added["created_at"],
        "custom_participant_id": added["custom_participant_id"],
        "preset_id": presets["group_call_host"],
        "updated_at": added["updated_at"],
    }
    assert_error(
        await api.call("GET", path(app_id, meeting_id, added["id"])), 404, f"No participant found with id {added['id']}"
    )
    assert_error(
        await api.call("DELETE", path(app_id, meeting_id, added["id"])),
        404,
        f"No participant found with id {added['id']}",
    )


async def test_deleting_participant_revokes_their_tokens(api: Api, app_id: str, meeting_id: str) -> None:
    added = await api.new_participant(app_id, meeting_id)
    refreshed = (await api.ok("POST", path(app_id, meeting_id, added["id"], "token")))["token"]
    assert await token_works(api, added["token"]) and await token_works(api, refreshed)
    await api.ok("DELETE", path(app_id, meeting_id, added["id"]))
    assert not await token_works(api, added["token"]) and not await token_works(api, refreshed)


async def test_refreshing_a_token_keeps_older_ones_valid(api: Api, app_id: str, meeting_id: str) -> None:
    added = await api.new_participant(app_id, meeting_id)
    response = await api.call("POST", path(app_id, meeting_id, added["id"], "token"))
    assert response.status_code == 200 and set(response.json()["data"]) == {"token"}
    fresh = response.json()["data"]["token"]
    assert fresh != added["token"]
    claims = api.services.tokens.read(fresh)
    assert (claims.account_id, claims.app_id, claims.meeting_id, claims.participant_id) == (
        ACCOUNT_ID, app_id, meeting_id, added["id"]
    )  # fmt: skip
    assert await token_works(api, added["token"]) and await token_works(api, fresh)


async def test_deleting_a_participant_disconnects_their_live_peers(api: Api, app_id: str, meeting_id: str) -> None:
    leaving = await api.new_participant(app_id, meeting_id, name="Leaving")
    staying = await api.new_participant(app_id, meeting_id, name="Staying")
    db = api.services.db
    first = await peer_joined(db, meeting_id, leaving["id"])
    second = await peer_joined(db, meeting_id, leaving["id"])
    await peer_joined(db, meeting_id, staying["id"])
    await api.ok("DELETE", path(app_id, meeting_id, leaving["id"]))
    async with db.read() as session:
        for peer_id in (first.id, second.id):
            assert (await session.get(SessionPeer, peer_id)).left_at is not None
        live = await session.get(MeetingSession, first.session_id)
    assert live.status == "LIVE" and live.live_participants == 1 and live.max_concurrent_participants == 3
    active = await api.ok("GET", f"/{app_id}/meetings/{meeting_id}/active-session")
    assert active["live_participants"] == 1


async def test_participant_routes_work_under_both_prefixes(api: Api, app_id: str, meeting_id: str) -> None:
    added = await api.ok(
        "POST",
        path(app_id, meeting_id),
        201,
        base=BARE,
        json={"custom_participant_id": "b", "preset_name": "webinar_presenter"},
    )
    assert (await api.ok("GET", path(app_id, meeting_id, added["id"]), base=BARE))["preset_name"] == "webinar_presenter"


async def test_participant_tokens_are_refused_on_participant_routes(api: Api, app_id: str, meeting_id: str) -> None:
    added = await api.new_participant(app_id, meeting_id)
    token = added["token"]
    for method, route in [
        ("POST", path(app_id, meeting_id)),
        ("GET", path(app_id, meeting_id)),
        ("GET", path(app_id, meeting_id, added["id"])),
        ("PATCH", path(app_id, meeting_id, added["id"])),
        ("DELETE", path(app_id, meeting_id, added["id"])),
        ("POST", path(app_id, meeting_id, added["id"], "token")),
    ]:
        assert_error(await api.call(method, route, token=token, json={}), 403, FORBIDDEN)
    assert_error(await api.call("GET", path(app_id, meeting_id), token=None), 401, "Unauthorized")
