"""Presets over HTTP (meetings.md §3): the four defaults of every app, read-only."""

from __future__ import annotations

import pytest

from tests.helpers import BARE, Api, assert_error

NAMES = ["group_call_host", "group_call_participant", "webinar_presenter", "webinar_viewer"]


@pytest.fixture(scope="module")
async def app_id(api: Api) -> str:
    return await api.new_app("Presets")


async def presets_of(api: Api, app_id: str) -> dict[str, dict]:
    return {preset["name"]: preset for preset in await api.ok("GET", f"/{app_id}/presets")}


async def test_every_new_app_lists_its_four_presets(api: Api, app_id: str) -> None:
    response = await api.call("GET", f"/{app_id}/presets")
    body = response.json()
    assert [preset["name"] for preset in body["data"]] == NAMES
    assert body["paging"] == {"total_count": 4, "start_offset": 1, "end_offset": 4}
    for preset in body["data"]:
        assert set(preset) == {"id", "name", "created_at", "updated_at"}


async def test_each_app_has_its_own_presets(api: Api, app_id: str) -> None:
    other = await api.new_app("Other")
    mine = {p["id"] for p in (await presets_of(api, app_id)).values()}
    theirs = {p["id"] for p in (await presets_of(api, other)).values()}
    assert len(mine) == len(theirs) == 4 and not mine & theirs


@pytest.mark.parametrize(
    ("name", "view_type", "can_record", "can_produce"),
    [
        ("group_call_host", "GROUP_CALL", True, "ALLOWED"),
        ("group_call_participant", "GROUP_CALL", False, "ALLOWED"),
        ("webinar_presenter", "WEBINAR", True, "ALLOWED"),
        ("webinar_viewer", "WEBINAR", False, "NOT_ALLOWED"),
    ],
)
async def test_a_preset_reads_back_with_its_config_permissions_and_ui(
    api: Api, app_id: str, name: str, view_type: str, can_record: bool, can_produce: str
) -> None:
    listed = (await presets_of(api, app_id))[name]
    preset = await api.ok("GET", f"/{app_id}/presets/{listed['id']}")
    assert {key: preset[key] for key in listed} == listed
    config, permissions = preset["config"], preset["permissions"]
    assert config["view_type"] == view_type
    assert config["max_screenshare_count"] == 1
    assert config["max_video_streams"] == {"desktop": 9, "mobile": 4}
    assert config["media"]["video"] == {"quality": "hd", "frame_rate": 30}
    assert config["media"]["screenshare"] == {"quality": "hd", "frame_rate": 5}
    assert permissions["can_record"] is can_record and permissions["can_livestream"] is can_record
    assert permissions["recorder_type"] == "NONE"
    assert permissions["is_recorder"] is False and permissions["hidden_participant"] is False
    for kind in ("audio", "video", "screenshare"):
        assert permissions["media"][kind] == {"can_produce": can_produce}
    assert preset["ui"]["design_tokens"]["theme"] == "dark"


async def test_search_matches_preset_names_case_insensitively(api: Api, app_id: str) -> None:
    webinar = await api.ok("GET", f"/{app_id}/presets", params={"search": "WEBINAR"})
    assert [preset["name"] for preset in webinar] == ["webinar_presenter", "webinar_viewer"]
    assert [p["name"] for p in await api.ok("GET", f"/{app_id}/presets", params={"search": "host"})] == [
        "group_call_host"
    ]
    assert await api.ok("GET", f"/{app_id}/presets", params={"search": "nothing"}) == []


async def test_presets_page_like_every_list(api: Api, app_id: str) -> None:
    body = (await api.call("GET", f"/{app_id}/presets", params={"per_page": 3, "page_no": 2})).json()
    assert [preset["name"] for preset in body["data"]] == ["webinar_viewer"]
    assert body["paging"] == {"total_count": 4, "start_offset": 4, "end_offset": 4}
    response = await api.call("GET", f"/{app_id}/presets", params={"per_page": 101})
    assert_error(response, 400, 'BAD_REQUEST: "per_page" must be less than or equal to 100')


async def test_unknown_presets_and_apps_are_404(api: Api, app_id: str) -> None:
    assert_error(await api.call("GET", f"/{app_id}/presets/nope"), 404, "No preset found with id nope")
    other = await api.new_app("Elsewhere")
    foreign = (await presets_of(api, other))["group_call_host"]["id"]
    response = await api.call("GET", f"/{app_id}/presets/{foreign}")
    assert_error(response, 404, f"No preset found with id {foreign}")
    assert_error(await api.call("GET", "/missing-app/presets"), 404, "No app found with id missing-app")


async def test_presets_cannot_be_created_changed_or_deleted(api: Api, app_id: str) -> None:
    preset_id = (await presets_of(api, app_id))["group_call_host"]["id"]
    for base in (BARE, "/client/v4" + BARE):
        response = await api.call("POST", f"/{app_id}/presets", base=base, json={"name": "mine"})
        assert_error(response, 405, "Method not allowed")
        for method in ("PATCH", "PUT", "DELETE"):
            response = await api.call(method, f"/{app_id}/presets/{preset_id}", base=base, json={})
            assert_error(response, 405, "Method not allowed")
    assert len(await presets_of(api, app_id)) == 4


async def test_participant_tokens_are_refused_on_presets(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    token = (await api.new_participant(app_id, meeting["id"]))["token"]
    response = await api.call("GET", f"/{app_id}/presets", token=token)
    assert_error(response, 403, "Participant is not allowed to perform this action")
    assert_error(await api.call("GET", f"/{app_id}/presets", token=None), 401, "Unauthorized")
