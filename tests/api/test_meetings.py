"""Meetings over HTTP (meetings.md §4): fields and defaults, recording_config, lists, PATCH vs PUT."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from recordkit.db.models import Meeting
from tests.helpers import BARE, Api, assert_error

DEFAULTS = {
    "title": None,
    "record_on_start": False,
    "live_stream_on_start": False,
    "persist_chat": False,
    "summarize_on_end": False,
    "transcribe_on_end": False,
    "ai_config": None,
    "session_keep_alive_time_in_secs": 60,
    "status": "ACTIVE",
    "recording_config": None,
}
ACCESS_KEY = "AKIA-secret-access-key-value"
SECRET = "very-secret-secret-value"
AWS = {"type": "aws", "access_key": ACCESS_KEY, "secret": SECRET, "bucket": "team-recordings", "region": "eu-west-1"}
PUBLIC_AWS = {"type": "aws", "bucket": "team-recordings", "region": "eu-west-1"}


@pytest.fixture(scope="module")
async def app_id(api: Api) -> str:
    return await api.new_app("Meetings")


def without_times(meeting: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meeting.items() if k not in ("id", "created_at", "updated_at")}


async def test_a_new_meeting_has_the_documented_defaults(api: Api, app_id: str) -> None:
    response = await api.call("POST", f"/{app_id}/meetings", json={})
    assert response.status_code == 201
    meeting = response.json()["data"]
    assert without_times(meeting) == DEFAULTS
    assert meeting["created_at"] == meeting["updated_at"]
    assert uuid.UUID(meeting["id"]).version == 4


async def test_every_writable_field_is_stored_and_echoed(api: Api, app_id: str) -> None:
    fields = {
        "title": "Weekly sync",
        "record_on_start": True,
        "live_stream_on_start": True,
        "persist_chat": True,
        "summarize_on_end": True,
        "transcribe_on_end": True,
        "ai_config": {"summarization": {"word_limit": 500}},
        "session_keep_alive_time_in_secs": 0.5,
        "status": "INACTIVE",
        "recording_config": {"max_seconds": 3600, "video_config": {"codec": "H264", "width": 1280, "height": 720}},
    }
    meeting = await api.new_meeting(app_id, **fields)
    assert without_times(meeting) == fields
    assert without_times(await api.ok("GET", f"/{app_id}/meetings/{meeting['id']}")) == fields


async def test_unknown_keys_are_ignored_and_integral_numbers_read_back_as_integers(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id, session_keep_alive_time_in_secs=600.0, colour="blue")
    assert meeting["session_keep_alive_time_in_secs"] == 600 and "colour" not in meeting


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"title": "x" * 256}, '"title" length must be less than or equal to 255 characters long'),
        ({"title": 5}, '"title" must be a string'),
        ({"record_on_start": "yes"}, '"record_on_start" must be a boolean'),
        ({"persist_chat": 1}, '"persist_chat" must be a boolean'),
        ({"ai_config": []}, '"ai_config" must be of type object'),
        (
            {"session_keep_alive_time_in_secs": -1},
            '"session_keep_alive_time_in_secs" must be greater than or equal to 0',
        ),
        (
            {"session_keep_alive_time_in_secs": 601},
            '"session_keep_alive_time_in_secs" must be less than or equal to 600',
        ),
        ({"session_keep_alive_time_in_secs": "60"}, '"session_keep_alive_time_in_secs" must be a number'),
        ({"status": "active"}, '"status" must be one of [ACTIVE, INACTIVE]'),
        ({"recording_config": "yes"}, '"recording_config" must be of type object'),
        (
            {"recording_config": {"max_seconds": 30}},
            '"recording_config.max_seconds" must be greater than or equal to 60',
        ),
        ({"recording_config": {"max_seconds": 60.5}}, '"recording_config.max_seconds" must be an integer'),
        (
            {"recording_config": {"video_config": {"codec": "AV1"}}},
            '"recording_config.video_config.codec" must be one of [H264, VP8, VP9]',
        ),
        (
            {"recording_config": {"file_name_prefix": "a b"}},
            '"recording_config.file_name_prefix" with value "a b" fails to match the required pattern: '
            "^[A-Za-z0-9_-]+$",
        ),
        (
            {"recording_config": {"storage_config": {"type": "dropbox"}}},
            '"recording_config.storage_config.type" must be one of [aws, azure, digitalocean, gcs, sftp, cloudflare]',
        ),
        (
            {"recording_config": {"storage_config": {"type": "aws", "access_key": "k", "secret": "s", "region": "r"}}},
            '"recording_config.storage_config.bucket" is required',
        ),
        (
            {"recording_config": {"realtimekit_bucket_config": {}}},
            '"recording_config.realtimekit_bucket_config.enabled" is required',
        ),
        (
            {"recording_config": {"live_streaming_config": {"rtmp_url": "http://example.org/live"}}},
            '"recording_config.live_streaming_config.rtmp_url" must be a valid uri with a scheme matching the '
            "rtmps? pattern",
        ),
    ],
)
async def test_field_rules(api: Api, app_id: str, body: dict[str, Any], message: str) -> None:
    assert_error(await api.call("POST", f"/{app_id}/meetings", json=body), 400, f"BAD_REQUEST: {message}")


async def test_validation_stops_at_the_first_field_in_table_order(api: Api, app_id: str) -> None:
    response = await api.call("POST", f"/{app_id}/meetings", json={"status": "nope", "title": 1})
    assert_error(response, 400, 'BAD_REQUEST: "title" must be a string')


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"realtimekit_bucket_config": {"enabled": False}},
            '"storage_config" is required when "realtimekit_bucket_config.enabled" is false',
        ),
        (
            {"realtimekit_bucket_config": {"enabled": False}, "storage_config": None},
            '"storage_config" is required when "realtimekit_bucket_config.enabled" is false',
        ),
        (
            {"video_config": {"export_file": False}},
            'recording would produce no file: enable "video_config.export_file" or "audio_config.export_file"',
        ),
        (
            {"video_config": {"codec": "VP8"}, "live_streaming_config": {"rtmp_url": "rtmp://live.example.org/app"}},
            '"rtmp_out_config" requires "video_config.codec" H264',
        ),
    ],
)
async def test_a_recording_config_that_could_never_record_is_refused(
    api: Api, app_id: str, config: dict[str, Any], message: str
) -> None:
    response = await api.call("POST", f"/{app_id}/meetings", json={"recording_config": config})
    assert_error(response, 400, f"BAD_REQUEST: {message}")
    meeting = await api.new_meeting(app_id)
    response = await api.call("PATCH", f"/{app_id}/meetings/{meeting['id']}", json={"recording_config": config})
    assert_error(response, 400, f"BAD_REQUEST: {message}")


async def test_workable_recording_configs_are_accepted(api: Api, app_id: str) -> None:
    audio_only = {"video_config": {"export_file": False}, "audio_config": {"export_file": True}}
    assert (await api.new_meeting(app_id, recording_config=audio_only))["recording_config"] == audio_only
    external_only = {"realtimekit_bucket_config": {"enabled": False}, "storage_config": AWS}
    stored = (await api.new_meeting(app_id, recording_config=external_only))["recording_config"]
    assert stored == {"realtimekit_bucket_config": {"enabled": False}, "storage_config": PUBLIC_AWS}


async def test_legacy_aliases_are_read_as_their_canonical_names(api: Api, app_id: str) -> None:
    config = {
        "dyte_bucket_config": {"enabled": True},
        "storage_config": {**PUBLIC_AWS, "access_key": "a", "secret_key": "b"},
    }
    meeting = await api.new_meeting(app_id, recording_config=config)
    assert meeting["recording_config"] == {"realtimekit_bucket_config": {"enabled": True}, "storage_config": PUBLIC_AWS}
    async with api.services.db.read() as session:
        row = await session.get(Meeting, meeting["id"])
    assert api.services.secrets.open(row.recording_secrets) == {"access_key": "a", "secret": "b"}


async def test_storage_secrets_are_never_echoed_but_kept_encrypted(api: Api, app_id: str) -> None:
    config = {"max_seconds": 3600, "storage_config": {**AWS, "path": "2026/03"}}
    created = await api.call("POST", f"/{app_id}/meetings", json={"title": "Secret", "recording_config": config})
    meeting_id = created.json()["data"]["id"]
    public = {"max_seconds": 3600, "storage_config": {**PUBLIC_AWS, "path": "2026/03"}}
    assert created.json()["data"]["recording_config"] == public
    answers = [
        created,
        await api.call("GET", f"/{app_id}/meetings/{meeting_id}"),
        await api.call("GET", f"/{app_id}/meetings", params={"search": meeting_id}),
        await api.call("PATCH", f"/{app_id}/meetings/{meeting_id}", json={"title": "Still secret"}),
        await api.call("PUT", f"/{app_id}/meetings/{meeting_id}", json={"recording_config": config}),
        await api.call("POST", f"/{app_id}/meetings", json={"recording_config": {**config, "max_seconds": 1}}),
    ]
    for response in answers:
        assert ACCESS_KEY not in response.text and SECRET not in response.text
    async with api.services.db.read() as session:
        row = await session.get(Meeting, meeting_id)
    assert ACCESS_KEY not in str(row.recording_config) and SECRET not in (row.recording_secrets or "")
    assert api.services.secrets.open(row.recording_secrets) == {"access_key": ACCESS_KEY, "secret": SECRET}


async def test_secret_values_never_appear_in_error_messages(api: Api, app_id: str) -> None:
    config = {
        "storage_config": {"type": "sftp", "host": "h", "username": "u", "auth_method": "PASSWORD", "password": 5}
    }
    response = await api.call("POST", f"/{app_id}/meetings", json={"recording_config": config})
    assert_error(response, 400, 'BAD_REQUEST: "recording_config.storage_config.password" must be a string')


async def test_get_answers_404_for_unknown_or_foreign_meetings(api: Api, app_id: str) -> None:
    assert_error(await api.call("GET", f"/{app_id}/meetings/nope"), 404, "No meeting found with id nope")
    other_app = await api.new_app("Other")
    foreign = (await api.new_meeting(other_app))["id"]
    assert_error(await api.call("GET", f"/{app_id}/meetings/{foreign}"), 404, f"No meeting found with id {foreign}")
    for method in ("PATCH", "PUT"):
        response = await api.call(method, f"/{app_id}/meetings/{foreign}", json={"title": 5})
        assert_error(response, 404, f"No meeting found with id {foreign}")


async def test_unknown_app_is_404(api: Api) -> None:
    assert_error(await api.call("POST", "/no-app/meetings", json={}), 404, "No app found with id no-app")
    assert_error(await api.call("GET", "/no-app/meetings"), 404, "No app found with id no-app")


async def test_patch_replaces_only_the_given_fields(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(
        app_id, title="Before", persist_chat=True, recording_config={"max_seconds": 120, "file_name_prefix": "x"}
    )
    await asyncio.sleep(0.01)
    changed = await api.ok(
        "PATCH",
        f"/{app_id}/meetings/{meeting['id']}",
        json={"title": "After", "status": "INACTIVE", "recording_config": {"max_seconds": 300}},
    )
    assert changed["title"] == "After" and changed["status"] == "INACTIVE"
    assert changed["persist_chat"] is True
    assert changed["recording_config"] == {"max_seconds": 300}
    assert changed["created_at"] == meeting["created_at"] and changed["updated_at"] > meeting["updated_at"]
    assert await api.ok("GET", f"/{app_id}/meetings/{meeting['id']}") == changed


async def test_patch_with_null_clears_nullable_fields(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id, title="T", ai_config={"a": 1}, recording_config={"storage_config": AWS})
    changed = await api.ok(
        "PATCH",
        f"/{app_id}/meetings/{meeting['id']}",
        json={"title": None, "ai_config": None, "recording_config": None, "persist_chat": None},
    )
    assert changed["title"] is None and changed["ai_config"] is None and changed["recording_config"] is None
    assert changed["persist_chat"] is False
    async with api.services.db.read() as session:
        assert (await session.get(Meeting, meeting["id"])).recording_secrets is None


async def test_empty_patch_still_counts_as_an_update(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id, title="Same")
    await asyncio.sleep(0.01)
    changed = await api.ok("PATCH", f"/{app_id}/meetings/{meeting['id']}", json={})
    assert without_times(changed) == without_times(meeting) and changed["updated_at"] > meeting["updated_at"]


async def test_put_returns_omitted_fields_to_defaults_and_keeps_status(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(
        app_id,
        title="Old",
        record_on_start=True,
        session_keep_alive_time_in_secs=300,
        status="INACTIVE",
        recording_config={"max_seconds": 120},
    )
    replaced = await api.ok(
        "PUT", f"/{app_id}/meetings/{meeting['id']}", json={"persist_chat": True, "status": "ACTIVE"}
    )
    assert without_times(replaced) == {**DEFAULTS, "persist_chat": True, "status": "INACTIVE"}
    assert replaced["id"] == meeting["id"] and replaced["created_at"] == meeting["created_at"]


async def test_put_validates_like_create(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    response = await api.call("PUT", f"/{app_id}/meetings/{meeting['id']}", json={"title": ""})
    assert_error(response, 400, 'BAD_REQUEST: "title" is not allowed to be empty')
    response = await api.call("PATCH", f"/{app_id}/meetings/{meeting['id']}", json=[1])
    assert_error(response, 400, 'BAD_REQUEST: "value" must be of type object')


async def test_list_is_newest_first_and_paged(api: Api) -> None:
    app_id = await api.new_app("Paged meetings")
    ids = [(await api.new_meeting(app_id, title=f"m{n}"))["id"] for n in range(5)]
    body = (await api.call("GET", f"/{app_id}/meetings", params={"per_page": 2, "page_no": 2})).json()
    assert [m["id"] for m in body["data"]] == [ids[2], ids[1]]
    assert body["paging"] == {"total_count": 5, "start_offset": 3, "end_offset": 4}
    everything = await api.ok("GET", f"/{app_id}/meetings")
    assert [m["id"] for m in everything] == ids[::-1]


async def test_list_filters_by_search_status_and_time(api: Api) -> None:
    app_id = await api.new_app("Filtered meetings")
    weekly = await api.new_meeting(app_id, title="Weekly Sync")
    await asyncio.sleep(0.01)
    daily = await api.new_meeting(app_id, title="Daily standup", status="INACTIVE")
    await asyncio.sleep(0.01)
    untitled = await api.new_meeting(app_id)

    async def ids(**params: Any) -> list[str]:
        return [m["id"] for m in await api.ok("GET", f"/{app_id}/meetings", params=params)]

    assert await ids(search="SYNC") == [weekly["id"]]
    assert await ids(search=daily["id"].upper()) == [daily["id"]]
    assert await ids(search=daily["id"][:8]) == []
    assert await ids(status="INACTIVE") == [daily["id"]]
    assert await ids(status="ACTIVE") == [untitled["id"], weekly["id"]]
    assert await ids(start_time=daily["created_at"]) == [untitled["id"], daily["id"]]
    assert await ids(end_time=daily["created_at"]) == [daily["id"], weekly["id"]]
    assert await ids(start_time=daily["created_at"], end_time=daily["created_at"]) == [daily["id"]]
    assert await ids(start_time=untitled["created_at"], end_time=weekly["created_at"]) == []
    with_offset = daily["created_at"].replace("Z", "+00:00")
    assert await ids(start_time=with_offset, end_time=with_offset) == [daily["id"]]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=LIVE", '"status" must be one of [ACTIVE, INACTIVE]'),
        ("start_time=yesterday", '"start_time" must be in ISO 8601 date format'),
        ("end_time=2026-13-01", '"end_time" must be in ISO 8601 date format'),
        ("page_no=-1", '"page_no" must be greater than or equal to 0'),
        ("per_page=500", '"per_page" must be less than or equal to 100'),
    ],
)
async def test_list_query_rules(api: Api, app_id: str, query: str, message: str) -> None:
    assert_error(await api.call("GET", f"/{app_id}/meetings?{query}"), 400, f"BAD_REQUEST: {message}")


async def test_meetings_are_served_under_both_prefixes(api: Api, app_id: str) -> None:
    created = await api.ok("POST", f"/{app_id}/meetings", 201, base=BARE, json={"title": "Bare"})
    assert await api.ok("GET", f"/{app_id}/meetings/{created['id']}") == created
    assert await api.ok("GET", f"/{app_id}/meetings/{created['id']}/", base=BARE) == created


async def test_participant_tokens_are_refused_on_meetings(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    token = (await api.new_participant(app_id, meeting["id"]))["token"]
    forbidden = "Participant is not allowed to perform this action"
    for method, path in [
        ("GET", f"/{app_id}/meetings"),
        ("POST", f"/{app_id}/meetings"),
        ("GET", f"/{app_id}/meetings/{meeting['id']}"),
        ("PATCH", f"/{app_id}/meetings/{meeting['id']}"),
        ("PUT", f"/{app_id}/meetings/{meeting['id']}"),
    ]:
        assert_error(await api.call(method, path, token=token, json={}), 403, forbidden)
    assert_error(await api.call("GET", f"/{app_id}/meetings", token=None), 401, "Unauthorized")


async def test_meetings_have_no_delete(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    assert_error(await api.call("DELETE", f"/{app_id}/meetings/{meeting['id']}"), 405, "Method not allowed")
