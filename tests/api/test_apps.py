"""Apps over HTTP (meetings.md §2): create and list, paging, search, auth."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.helpers import ACCOUNT_ID, API_TOKEN, BARE, Api, assert_error

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


async def test_creating_an_app_answers_201_with_the_app(api: Api) -> None:
    response = await api.call("POST", "/apps", json={"name": "Acme"})
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True and body["data"] == body["result"]
    assert body["errors"] == [] and body["messages"] == []
    app = body["data"]["app"]
    assert set(app) == {"id", "name", "created_at"}
    assert app["name"] == "Acme"
    assert uuid.UUID(app["id"]).version == 4 and app["id"] == app["id"].lower()
    assert TIMESTAMP.match(app["created_at"])


async def test_both_prefixes_serve_apps(api: Api) -> None:
    name = unique("bare")
    created = await api.ok("POST", "/apps", 201, base=BARE, json={"name": name})
    listed = await api.ok("GET", "/apps", params={"search": name})
    assert listed == [created["app"]]
    assert await api.ok("GET", "/apps", base=BARE, params={"search": name}) == listed


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, '"name" is required'),
        ({"name": None}, '"name" is required'),
        ({"name": ""}, '"name" is not allowed to be empty'),
        ({"name": 7}, '"name" must be a string'),
        ({"name": "x" * 256}, '"name" length must be less than or equal to 255 characters long'),
        ([], '"value" must be of type object'),
    ],
)
async def test_app_name_rules(api: Api, body: object, message: str) -> None:
    assert_error(await api.call("POST", "/apps", json=body), 400, f"BAD_REQUEST: {message}")


async def test_an_app_name_of_255_characters_is_accepted(api: Api) -> None:
    data = await api.ok("POST", "/apps", 201, json={"name": "x" * 255})
    assert data["app"]["name"] == "x" * 255


async def test_invalid_json_is_refused(api: Api) -> None:
    response = await api.call("POST", "/apps", content=b"{name", headers={"content-type": "application/json"})
    assert_error(response, 400, "BAD_REQUEST: request body is not valid JSON")


async def test_listing_pages_apps_newest_first(api: Api) -> None:
    tag = unique("paged")
    ids = [(await api.ok("POST", "/apps", 201, json={"name": f"{tag}-{n}"}))["app"]["id"] for n in range(5)]

    async def page(**params: object) -> dict:
        response = await api.call("GET", "/apps", params={"search": tag, **params})
        assert response.status_code == 200, response.text
        return response.json()

    first = await page(per_page=2)
    assert [app["id"] for app in first["data"]] == ids[::-1][:2]
    assert first["paging"] == {"total_count": 5, "start_offset": 1, "end_offset": 2}
    last = await page(per_page=2, page_no=3)
    assert [app["id"] for app in last["data"]] == [ids[0]]
    assert last["paging"] == {"total_count": 5, "start_offset": 5, "end_offset": 5}
    beyond = await page(per_page=2, page_no=4)
    assert beyond["data"] == [] and beyond["paging"] == {"total_count": 5, "start_offset": 0, "end_offset": 0}
    oldest_first = await page(sort_order="ASC")
    assert [app["id"] for app in oldest_first["data"]] == ids


async def test_page_zero_reads_as_one_and_per_page_zero_as_twenty(api: Api) -> None:
    tag = unique("window")
    for n in range(21):
        await api.ok("POST", "/apps", 201, json={"name": f"{tag}-{n}"})
    response = await api.call("GET", "/apps", params={"search": tag, "page_no": 0, "per_page": 0})
    body = response.json()
    assert len(body["data"]) == 20
    assert body["paging"] == {"total_count": 21, "start_offset": 1, "end_offset": 20}


async def test_search_is_a_case_insensitive_substring_with_literal_wildcards(api: Api) -> None:
    tag = uuid.uuid4().hex[:8]
    percent = await api.ok("POST", "/apps", 201, json={"name": f"Done 100%_{tag}"})
    await api.ok("POST", "/apps", 201, json={"name": f"Done 1000 {tag}"})
    found = await api.ok("GET", "/apps", params={"search": f"DONE 100%_{tag.upper()}"})
    assert found == [percent["app"]]
    assert len(await api.ok("GET", "/apps", params={"search": f"done 100{tag}"})) == 0
    assert len(await api.ok("GET", "/apps", params={"search": tag})) == 2


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("page_no=-1", '"page_no" must be greater than or equal to 0'),
        ("page_no=abc", '"page_no" must be a number'),
        ("page_no=1.5", '"page_no" must be an integer'),
        ("per_page=101", '"per_page" must be less than or equal to 100'),
        ("per_page=-3", '"per_page" must be greater than or equal to 0'),
        ("sort_order=asc", '"sort_order" must be one of [ASC, DESC]'),
    ],
)
async def test_list_query_rules(api: Api, query: str, message: str) -> None:
    assert_error(await api.call("GET", f"/apps?{query}"), 400, f"BAD_REQUEST: {message}")


async def test_integral_floats_and_empty_values_are_accepted_in_the_query(api: Api) -> None:
    response = await api.call("GET", "/apps?page_no=1.0&per_page=100.0&search=&sort_order=")
    assert response.status_code == 200
    assert response.json()["paging"]["start_offset"] == 1


async def test_apps_need_an_api_token_of_the_account(api: Api) -> None:
    assert_error(await api.call("GET", "/apps", token=None), 401, "Unauthorized")
    assert_error(await api.call("POST", "/apps", token="nope", json={"name": "x"}), 401, "Unauthorized")
    other = "0" * 32
    response = await api.client.get(f"/accounts/{other}/realtime/kit/apps", headers=api.auth)
    assert_error(response, 403, f"Token does not grant access to account {other}")
    lower_scheme = {"Authorization": f"bearer {API_TOKEN}"}
    response = await api.client.get(f"/accounts/{ACCOUNT_ID}/realtime/kit/apps", headers=lower_scheme)
    assert response.status_code == 200


async def test_participant_tokens_are_refused_on_apps(api: Api) -> None:
    app_id = await api.new_app()
    meeting = await api.new_meeting(app_id)
    token = (await api.new_participant(app_id, meeting["id"]))["token"]
    assert_error(await api.call("GET", "/apps", token=token), 403, "Participant is not allowed to perform this action")
    response = await api.call("POST", "/apps", token=token, json={"name": "x"})
    assert_error(response, 403, "Participant is not allowed to perform this action")


async def test_auth_is_checked_before_the_body(api: Api) -> None:
    assert_error(await api.call("POST", "/apps", token=None, json={}), 401, "Unauthorized")


async def test_unsupported_method_on_apps_is_405(api: Api) -> None:
    assert_error(await api.call("DELETE", "/apps"), 405, "Method not allowed")
