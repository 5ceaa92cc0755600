"""The six Recordings endpoints over HTTP (recordings.md §6), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from recordkit.clock import parse_iso8601, utcnow
from recordkit.db.models import Recording, WebhookEvent
from recordkit.meetings.sessions import peer_joined
from tests.helpers import ACCOUNT_ID, BARE, Api, assert_error

STATUS_ENUM = "[INVOKED, RECORDING, UPLOADING, UPLOADED, ERRORED, PAUSED]"


async def start(api: Api, app_id: str, **body: Any) -> Any:
    return await api.call("POST", f"/{app_id}/recordings", json=body)


async def started(api: Api, app_id: str, **body: Any) -> dict[str, Any]:
    return await api.ok("POST", f"/{app_id}/recordings", json=body)


async def act(api: Api, app_id: str, recording_id: str, action: str) -> Any:
    return await api.call("PUT", f"/{app_id}/recordings/{recording_id}", json={"action": action})


@pytest.fixture(scope="module")
async def app_id(api: Api) -> str:
    return await api.new_app("Recordings")


async def test_start_answers_invoked_with_every_field(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id, title="Weekly sync")
    data = await started(api, app_id, meeting_id=meeting["id"], file_name_prefix="weekly_sync", max_seconds=3600)
    assert set(data) == {
        "id", "meeting_id", "type", "status", "invoked_time", "started_time", "stopped_time",
        "recording_duration", "output_file_name", "file_size", "download_url", "download_url_expiry",
        "audio_download_url", "session_id", "start_reason", "stop_reason", "storage_config",
    }  # fmt: skip
    assert data["status"] == "INVOKED" and data["type"] == "COMPOSITE"
    assert data["meeting_id"] == meeting["id"]
    assert data["started_time"] is None and data["stopped_time"] is None and data["recording_duration"] == 0
    assert data["start_reason"] == {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}}
    assert data["stop_reason"] is None and data["storage_config"] is None and data["session_id"] is None
    assert data["invoked_time"].endswith("Z") and len(data["invoked_time"]) == 24
    prefix, meeting_part, rest = (
        data["output_file_name"].split("_", 1)[0],
        meeting["id"],
        data["output_file_name"],
    )
    assert prefix == "weekly" and rest.startswith(f"weekly_sync_{meeting_part}_") and rest.endswith(".mp4")


async def test_file_extension_follows_codec_and_audio_only(api: Api, app_id: str) -> None:
    cases = [
        ({"video_config": {"codec": "VP8"}}, ".webm"),
        ({"video_config": {"codec": "VP9"}}, ".webm"),
        ({"video_config": {"export_file": False}, "audio_config": {"codec": "MP3"}}, ".mp3"),
        ({"video_config": {"export_file": False}, "audio_config": {}}, ".m4a"),
        ({"video_config": {"codec": "VP8", "export_file": False}, "audio_config": {}}, ".ogg"),
        ({"interactive_config": {"type": "ID3"}}, ".tar"),
    ]
    for body, extension in cases:
        meeting = await api.new_meeting(app_id)
        data = await started(api, app_id, meeting_id=meeting["id"], **body)
        assert data["output_file_name"] == data["output_file_name"].split(".")[0] + extension
        assert not data["output_file_name"].startswith("_")


async def test_both_prefixes_and_trailing_slash_mean_the_same_route(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    data = await api.ok("POST", f"/{app_id}/recordings/", base=BARE, json={"meeting_id": meeting["id"]})
    again = await api.ok("GET", f"/{app_id}/recordings/{data['id']}/")
    assert again == data


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, '"meeting_id" is required'),
        ({"meeting_id": "nope"}, '"meeting_id" must be a valid GUID'),
        ({"meeting_id": 5}, '"meeting_id" must be a string'),
        ({"max_seconds": 30}, '"max_seconds" must be greater than or equal to 60'),
        ({"max_seconds": 86401}, '"max_seconds" must be less than or equal to 86400'),
        ({"max_seconds": 60.5}, '"max_seconds" must be an integer'),
        ({"max_seconds": "60"}, '"max_seconds" must be a number'),
        ({"allow_multiple_recordings": "yes"}, '"allow_multiple_recordings" must be a boolean'),
        (
            {"file_name_prefix": "a b"},
            '"file_name_prefix" with value "a b" fails to match the required pattern: ^[A-Za-z0-9_-]+$',
        ),
        ({"file_name_prefix": ""}, '"file_name_prefix" is not allowed to be empty'),
        (
            {"file_name_prefix": "x" * 101},
            '"file_name_prefix" length must be less than or equal to 100 characters long',
        ),
        ({"video_config": {"codec": "AV1"}}, '"video_config.codec" must be one of [H264, VP8, VP9]'),
        ({"video_config": {"width": 0}}, '"video_config.width" must be greater than or equal to 1'),
        ({"video_config": {"height": 1921}}, '"video_config.height" must be less than or equal to 1920'),
        ({"video_config": "big"}, '"video_config" must be of type object'),
        ({"video_config": {"watermark": {}}}, '"video_config.watermark.url" is required'),
        (
            {"video_config": {"watermark": {"url": "nope"}}},
            '"video_config.watermark.url" must be a valid uri',
        ),
        (
            {"video_config": {"watermark": {"url": "https://x/y.png", "position": "center"}}},
            '"video_config.watermark.position" must be one of [left top, right top, left bottom, right bottom]',
        ),
        ({"audio_config": {"channel": "5.1"}}, '"audio_config.channel" must be one of [mono, stereo]'),
        ({"audio_config": {"codec": "FLAC"}}, '"audio_config.codec" must be one of [MP3, AAC]'),
        ({"realtimekit_bucket_config": {}}, '"realtimekit_bucket_config.enabled" is required'),
        (
            {"storage_config": {"type": "dropbox"}},
            '"storage_config.type" must be one of [aws, azure, digitalocean, gcs, sftp, cloudflare]',
        ),
        ({"storage_config": {"type": "aws", "secret": "s3cr3t"}}, '"storage_config.access_key" is required'),
        (
            {"storage_config": {"type": "sftp", "host": "h", "username": "u", "auth_method": "KEY"}},
            '"storage_config.private_key" is required',
        ),
        (
            {"storage_config": {"type": "sftp", "host": "h", "port": 70000}},
            '"storage_config.port" must be less than or equal to 65535',
        ),
        (
            {"rtmp_out_config": {"rtmp_url": "http://live.example/app"}},
            '"rtmp_out_config.rtmp_url" must be a valid uri with a scheme matching the rtmps? pattern',
        ),
        ({"interactive_config": {"type": "OTHER"}}, '"interactive_config.type" must be one of [ID3]'),
        ({"url": "https://example.org/page"}, '"url" is not supported'),
    ],
)
async def test_invalid_start_fields_answer_400(api: Api, app_id: str, body: dict[str, Any], message: str) -> None:
    meeting = await api.new_meeting(app_id)
    payload = body if not body or "meeting_id" in body else {"meeting_id": meeting["id"], **body}
    assert_error(await start(api, app_id, **payload), 400, f"BAD_REQUEST: {message}")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"realtimekit_bucket_config": {"enabled": False}},
            '"storage_config" is required when "realtimekit_bucket_config.enabled" is false',
        ),
        (
            {"video_config": {"export_file": False}},
            'recording would produce no file: enable "video_config.export_file" or "audio_config.export_file"',
        ),
        (
            {"video_config": {"codec": "VP8"}, "interactive_config": {}},
            '"interactive_config" requires "video_config.codec" H264 and a video file',
        ),
        (
            {
                "video_config": {"codec": "VP9"},
                "rtmp_out_config": {"rtmp_url": "rtmp://live.example/app/key"},
            },
            '"rtmp_out_config" requires "video_config.codec" H264',
        ),
        (
            {"video_config": {"width": 640, "watermark": {"url": "https://x/y.png", "size": {"width": 641}}}},
            '"video_config.watermark.size.width" must be less than or equal to "video_config.width" (640)',
        ),
    ],
)
async def test_effective_configuration_rules_answer_400(
    api: Api, app_id: str, body: dict[str, Any], message: str
) -> None:
    meeting = await api.new_meeting(app_id)
    assert_error(await start(api, app_id, meeting_id=meeting["id"], **body), 400, f"BAD_REQUEST: {message}")


async def test_bad_bodies(api: Api, app_id: str) -> None:
    response = await api.call("POST", f"/{app_id}/recordings", content=b"{nope")
    assert_error(response, 400, "BAD_REQUEST: request body is not valid JSON")
    response = await api.call("POST", f"/{app_id}/recordings", json=[1, 2])
    assert_error(response, 400, 'BAD_REQUEST: "value" must be of type object')
    response = await api.call("POST", f"/{app_id}/recordings", content=b" " * (1024 * 1024 + 1))
    assert_error(response, 413, "Request body too large")


async def test_legacy_aliases_are_accepted(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    storage = {
        "type": "aws",
        "access_key": "AKIA",
        "secret_key": "very-secret",
        "bucket": "b",
        "region": "eu-west-1",
    }
    data = await started(
        api, app_id, meeting_id=meeting["id"], dyte_bucket_config={"enabled": False}, storage_config=storage
    )
    assert data["storage_config"] == {"type": "aws", "bucket": "b", "region": "eu-west-1"}


async def test_unknown_meeting_and_app(api: Api, app_id: str) -> None:
    missing = "b3f6a2c4-1e5d-4a7b-9c8d-2f3e4a5b6c7d"
    assert_error(await start(api, app_id, meeting_id=missing), 404, f"No meeting found with id {missing}")
    assert_error(await start(api, "nope", meeting_id=missing), 404, "No app found with id nope")


async def test_auth_failures(api: Api, app_id: str) -> None:
    path = f"/{app_id}/recordings"
    assert_error(await api.call("GET", path, token=None), 401, "Unauthorized")
    assert_error(await api.call("GET", path, token="wrong"), 401, "Unauthorized")
    legacy = {"X-Auth-Key": "k", "X-Auth-Email": "e@example.org"}
    assert_error(await api.call("GET", path, token=None, headers=legacy), 401, "Unauthorized")
    response = await api.client.get(f"/client/v4/accounts/0000/realtime/kit/{app_id}/recordings", headers=api.auth)
    assert_error(response, 403, "Token does not grant access to account 0000")
    lower = {"Authorization": f"bearer {api.auth['Authorization'].split()[1]}"}
    assert (await api.call("GET", path, token=None, headers=lower)).status_code == 200


async def test_routes_and_methods(api: Api, app_id: str) -> None:
    assert_error(await api.call("GET", f"/{app_id}/recordingz", token=None), 404, "No route for the URI")
    assert_error(await api.call("DELETE", f"/{app_id}/recordings/x"), 405, "Method not allowed")
    assert_error(await api.call("GET", f"/{app_id}/recordings/a%00b"), 404, "No route for the URI")


async def test_null_characters_are_refused_not_crashed_on(api: Api, app_id: str) -> None:
    response = await api.call("GET", f"/{app_id}/recordings", params={"search": "a\x00b"})
    assert_error(response, 400, 'BAD_REQUEST: "search" must not contain the null character')
    response = await start(api, app_id, meeting_id="b3f6a2c4-1e5d-4a7b-9c8d-2f3e4a5b6c7d", file_name_prefix="\x00")
    assert_error(response, 400, 'BAD_REQUEST: "file_name_prefix" must not contain the null character')


async def test_one_active_recording_per_meeting(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    first = await started(api, app_id, meeting_id=meeting["id"])
    response = await start(api, app_id, meeting_id=meeting["id"])
    assert_error(response, 409, f"A recording is already in progress for meeting_id {meeting['id']}")
    assert response.headers["x-should-retry"] == "false"
    response = await start(api, app_id, meeting_id=meeting["id"], allow_multiple_recordings=True)
    assert response.status_code == 409, "the first recording did not opt in"
    await act(api, app_id, first["id"], "stop")
    opted = await started(api, app_id, meeting_id=meeting["id"], allow_multiple_recording=True)
    second = await started(api, app_id, meeting_id=meeting["id"], allow_multiple_recordings=True)
    assert_error(await start(api, app_id, meeting_id=meeting["id"]), 409, response.json()["error"]["message"])
    active = await api.ok("GET", f"/{app_id}/recordings/active-recording/{meeting['id']}")
    assert active["id"] == second["id"] != opted["id"]


async def test_inactive_meeting_refuses_recordings(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id, status="INACTIVE")
    assert_error(await start(api, app_id, meeting_id=meeting["id"]), 409, f"Meeting {meeting['id']} is INACTIVE")


async def test_active_recording_route(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    path = f"/{app_id}/recordings/active-recording/{meeting['id']}"
    response = await api.call("GET", path)
    assert_error(response, 404, f"No active recording found for meeting_id {meeting['id']}")
    unknown = await api.call("GET", f"/{app_id}/recordings/active-recording/not-a-meeting")
    assert_error(unknown, 404, "No meeting found with id not-a-meeting")
    data = await started(api, app_id, meeting_id=meeting["id"])
    assert (await api.ok("GET", path))["id"] == data["id"]


async def test_pause_resume_stop_follow_the_state_table(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    data = await started(api, app_id, meeting_id=meeting["id"])
    rid = data["id"]
    for action in ("pause", "resume"):
        assert_error(await act(api, app_id, rid, action), 409, f"Recording {rid} is in state INVOKED; cannot {action}")
    await api.services.reports.capture_started(rid)
    assert_error(await act(api, app_id, rid, "resume"), 409, f"Recording {rid} is in state RECORDING; cannot resume")
    paused = await api.ok("PUT", f"/{app_id}/recordings/{rid}", json={"action": "pause"})
    assert paused["status"] == "PAUSED" and paused["started_time"] is not None
    assert_error(await act(api, app_id, rid, "pause"), 409, f"Recording {rid} is in state PAUSED; cannot pause")
    resumed = await api.ok("PUT", f"/{app_id}/recordings/{rid}", json={"action": "resume"})
    assert resumed["status"] == "RECORDING" and resumed["started_time"] == paused["started_time"]
    stopped = await api.ok("PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})
    assert stopped["status"] == "UPLOADING"
    assert stopped["stop_reason"] == {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}}
    assert stopped["invoked_time"] <= stopped["started_time"] <= stopped["stopped_time"]
    for action in ("pause", "resume", "stop"):
        assert_error(
            await act(api, app_id, rid, action),
            409,
            f"Recording {rid} is in state UPLOADING; cannot {action}",
        )
    async with api.services.db.read() as session:
        events = await session.scalar(select(func.count()).where(WebhookEvent.recording_id == rid))
    assert events == 5, "INVOKED, RECORDING, PAUSED, RECORDING, UPLOADING each queue one event"


async def test_stop_before_capture_errors_without_file(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    rid = (await started(api, app_id, meeting_id=meeting["id"]))["id"]
    stopped = await api.ok("PUT", f"/{app_id}/recordings/{rid}", json={"action": "stop"})
    assert stopped["status"] == "ERRORED" and stopped["stopped_time"] is not None
    assert stopped["download_url"] is None and stopped["recording_duration"] == 0
    assert_error(await act(api, app_id, rid, "stop"), 409, f"Recording {rid} is in state ERRORED; cannot stop")


async def test_action_field_rules(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    rid = (await started(api, app_id, meeting_id=meeting["id"]))["id"]
    response = await api.call("PUT", f"/{app_id}/recordings/{rid}", json={})
    assert_error(response, 400, 'BAD_REQUEST: "action" is required')
    response = await act(api, app_id, rid, "STOP")
    assert_error(response, 400, 'BAD_REQUEST: "action" must be one of [stop, pause, resume]')
    response = await act(api, app_id, "9a7d3e21-5c4b-4f6a-8e2d-1b0c9f8e7d6a", "stop")
    assert_error(response, 404, "No recording found with id 9a7d3e21-5c4b-4f6a-8e2d-1b0c9f8e7d6a")


async def test_recordings_of_another_app_are_invisible(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    rid = (await started(api, app_id, meeting_id=meeting["id"]))["id"]
    other = await api.new_app("Other")
    assert_error(await api.call("GET", f"/{other}/recordings/{rid}"), 404, f"No recording found with id {rid}")
    assert_error(await start(api, other, meeting_id=meeting["id"]), 404, f"No meeting found with id {meeting['id']}")


async def test_list_paging_filters_and_order(api: Api) -> None:
    app_id = await api.new_app("Listing")
    titled = await api.new_meeting(app_id, title="Board Review")
    other = await api.new_meeting(app_id, title="standup")
    ids = []
    for meeting in (titled, other, titled, other, titled):
        data = await started(api, app_id, meeting_id=meeting["id"], allow_multiple_recordings=True)
        ids.append(data["id"])
        await asyncio.sleep(0.002)
    await act(api, app_id, ids[0], "stop")
    await api.services.reports.capture_started(ids[1])

    async def page(**query: Any) -> Any:
        response = await api.call("GET", f"/{app_id}/recordings", params=query)
        assert response.status_code == 200, response.text
        return response.json()

    everything = await page()
    assert [item["id"] for item in everything["data"]] == ids[::-1]
    assert everything["paging"] == {"total_count": 5, "start_offset": 1, "end_offset": 5}
    assert everything["data"][0]["meeting"]["id"] == titled["id"]
    assert (await page(sort_order="ASC"))["data"][0]["id"] == ids[0]
    second = await page(per_page=2, page_no=2)
    assert [item["id"] for item in second["data"]] == ids[::-1][2:4]
    assert second["paging"] == {"total_count": 5, "start_offset": 3, "end_offset": 4}
    assert (await page(per_page=2, page_no=9))["paging"] == {
        "total_count": 5,
        "start_offset": 0,
        "end_offset": 0,
    }
    assert (await page(page_no=0, per_page=0))["paging"]["end_offset"] == 5
    assert {item["id"] for item in (await page(meeting_id=titled["id"]))["data"]} == {ids[0], ids[2], ids[4]}
    assert (await page(search="board rev"))["paging"]["total_count"] == 3
    assert (await page(search=other["id"].upper()))["paging"]["total_count"] == 2
    assert (await page(search="%"))["paging"]["total_count"] == 0
    assert [i["id"] for i in (await page(status="ERRORED"))["data"]] == [ids[0]]
    both = await api.call("GET", f"/{app_id}/recordings?status=ERRORED&status[]=RECORDING")
    assert {i["id"] for i in both.json()["data"]} == {ids[0], ids[1]}
    assert (await page(status="RECORDING,,ERRORED"))["paging"]["total_count"] == 2
    first_time = everything["data"][-1]["invoked_time"]
    assert (await page(start_time=first_time))["paging"]["total_count"] == 5
    assert (await page(end_time=first_time))["paging"]["total_count"] == 1
    assert (await page(start_time="2030-01-01T00:00:00Z", end_time="2020-01-01"))["paging"]["total_count"] == 0
    assert (await page(expired="true"))["paging"]["total_count"] == 0
    assert (await page(expired="false"))["paging"]["total_count"] == 0
    assert (await page(meeting_id="b3f6a2c4-1e5d-4a7b-9c8d-2f3e4a5b6c7d"))["data"] == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=RECORDING,DONE", f'"status[1]" must be one of {STATUS_ENUM}'),
        ("page_no=-1", '"page_no" must be greater than or equal to 0'),
        ("per_page=101", '"per_page" must be less than or equal to 100'),
        ("per_page=2.5", '"per_page" must be an integer'),
        ("per_page=many", '"per_page" must be a number'),
        ("expired=yes", '"expired" must be a boolean'),
        ("meeting_id=42", '"meeting_id" must be a valid GUID'),
        ("start_time=yesterday", '"start_time" must be in ISO 8601 date format'),
        ("sort_order=UP", '"sort_order" must be one of [ASC, DESC]'),
        ("sort_by=title", '"sort_by" must be one of [invokedTime]'),
    ],
)
async def test_list_query_rules(api: Api, app_id: str, query: str, message: str) -> None:
    response = await api.call("GET", f"/{app_id}/recordings?{query}")
    assert_error(response, 400, f"BAD_REQUEST: {message}")


async def test_empty_query_values_count_as_absent(api: Api, app_id: str) -> None:
    response = await api.call("GET", f"/{app_id}/recordings?page_no=&per_page=&status=&per_page=1")
    assert response.status_code == 200 and len(response.json()["data"]) <= 1


async def test_track_recording_needs_a_live_session(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    path = f"/{app_id}/recordings/track"
    missing = "b3f6a2c4-1e5d-4a7b-9c8d-2f3e4a5b6c7d"
    response = await api.call("POST", path, json={"meeting_id": missing})
    assert_error(response, 404, f"No meeting found with id {missing}")
    response = await api.call("POST", path, json={"meeting_id": meeting["id"]})
    assert_error(response, 404, f"No active session found for meeting_id {meeting['id']}")
    participant = await api.new_participant(app_id, meeting["id"])
    await peer_joined(api.services.db, meeting["id"], participant["id"])
    data = await api.ok("POST", path, json={"meeting_id": meeting["id"], "user_ids": ["a", "a"]})
    recording = data["recording"]
    assert recording["type"] == "TRACK" and recording["status"] == "INVOKED"
    assert recording["session_id"] is not None and recording["download_url"] is None
    assert recording["output_file_name"] == (
        "{{file_name_prefix}}_{{user_id}}_{{peer_id}}_{{stream_kind}}_{{media_kind}}_{{date_time}}.webm"
    )
    response = await api.call("POST", path, json={"meeting_id": meeting["id"]})
    assert_error(response, 409, f"A track recording is already in progress for meeting_id {meeting['id']}")
    composite = await started(api, app_id, meeting_id=meeting["id"])
    assert composite["session_id"] == recording["session_id"]
    rid = recording["id"]
    for action in ("pause", "resume"):
        assert_error(await act(api, app_id, rid, action), 409, f"Recording {rid} is a track recording; cannot {action}")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"layers": {"default": {"media_kind": "screen"}}},
            400,
            '"layers.default.media_kind" must be one of [audio, video]',
        ),
        ({"layers": {"": {}}}, 400, '"layers." is not allowed'),
        ({"layers": {"a": {}, "b": {}}}, 400, '"layers" must have less than or equal to 1 key'),
        ({"user_ids": []}, 400, '"user_ids" must contain at least 1 items'),
        (
            {"user_ids": [str(i) for i in range(101)]},
            400,
            '"user_ids" must contain less than or equal to 100 items',
        ),
        ({"user_ids": [""]}, 400, '"user_ids[0]" is not allowed to be empty'),
    ],
)
async def test_track_field_rules(api: Api, app_id: str, body: dict[str, Any], status: int, message: str) -> None:
    meeting = await api.new_meeting(app_id)
    response = await api.call("POST", f"/{app_id}/recordings/track", json={"meeting_id": meeting["id"], **body})
    assert_error(response, status, f"BAD_REQUEST: {message}")


async def test_participant_tokens(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    other_meeting = await api.new_meeting(app_id)
    host = await api.new_participant(app_id, meeting["id"], "group_call_host", "Host")
    guest = await api.new_participant(app_id, meeting["id"], "group_call_participant", "Guest")
    data = await api.ok("POST", f"/{app_id}/recordings", token=host["token"], json={"meeting_id": meeting["id"]})
    assert data["start_reason"]["caller"] == {"type": "USER", "user_Id": host["id"], "name": "Host"}
    forbidden = "Participant is not allowed to perform this action"
    response = await api.call(
        "POST", f"/{app_id}/recordings", token=host["token"], json={"meeting_id": other_meeting["id"]}
    )
    assert_error(response, 403, forbidden)
    response = await api.call("POST", f"/{app_id}/recordings", token=guest["token"], json={"meeting_id": meeting["id"]})
    assert_error(response, 403, forbidden)
    assert_error(await api.call("GET", f"/{app_id}/recordings", token=host["token"]), 403, forbidden)
    response = await api.call(
        "POST", f"/{app_id}/recordings/track", token=host["token"], json={"meeting_id": meeting["id"]}
    )
    assert_error(response, 403, forbidden)
    own = await api.ok("GET", f"/{app_id}/recordings/{data['id']}", token=host["token"])
    assert own["id"] == data["id"]
    stopped = await api.ok("PUT", f"/{app_id}/recordings/{data['id']}", token=host["token"], json={"action": "stop"})
    assert stopped["stop_reason"]["caller"]["user_Id"] == host["id"]
    response = await api.client.get(
        f"/client/v4/accounts/ffff/realtime/kit/{app_id}/recordings/{data['id']}",
        headers={"Authorization": f"Bearer {host['token']}"},
    )
    assert_error(response, 403, forbidden)
    await api.ok("DELETE", f"/{app_id}/meetings/{meeting['id']}/participants/{host['id']}")
    revoked = await api.call("GET", f"/{app_id}/recordings/{data['id']}", token=host["token"])
    assert_error(revoked, 401, "Unauthorized")
    assert ACCOUNT_ID not in revoked.text


async def test_participant_start_records_with_the_meeting_settings(api: Api, app_id: str) -> None:
    config = {"file_name_prefix": "from_meeting", "video_config": {"codec": "VP8"}}
    meeting = await api.new_meeting(app_id, recording_config=config)
    host = await api.new_participant(app_id, meeting["id"], "group_call_host", "Host")
    body = {"meeting_id": meeting["id"], "unknown_key": "ignored as for everyone", "max_seconds": None}
    data = await api.ok("POST", f"/{app_id}/recordings", token=host["token"], json=body)
    assert data["output_file_name"].startswith(f"from_meeting_{meeting['id']}_")
    assert data["output_file_name"].endswith(".webm")


@pytest.mark.parametrize(
    "extra",
    [
        {"allow_multiple_recordings": True},
        {"allow_multiple_recording": True},
        {"max_seconds": 60},
        {"file_name_prefix": "mine"},
        {"video_config": {}},
        {"video_config": {"watermark": {"url": "http://127.0.0.1/logo.png"}}},
        {"audio_config": {"export_file": True}},
        {"storage_config": None},
        {"realtimekit_bucket_config": {"enabled": True}},
        {"dyte_bucket_config": {"enabled": True}},
        {"rtmp_out_config": {"rtmp_url": "rtmp://live.example/app/key"}},
        {"interactive_config": {}},
    ],
)
async def test_participant_start_may_not_choose_settings(api: Api, app_id: str, extra: dict[str, Any]) -> None:
    meeting = await api.new_meeting(app_id)
    host = await api.new_participant(app_id, meeting["id"], "group_call_host", "Host")
    response = await api.call(
        "POST", f"/{app_id}/recordings", token=host["token"], json={"meeting_id": meeting["id"], **extra}
    )
    assert_error(response, 403, "Participant is not allowed to perform this action")
    assert (await api.call("GET", f"/{app_id}/recordings/active-recording/{meeting['id']}")).status_code == 404


async def test_participant_settings_refusal_keeps_its_place_in_the_check_order(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    host = await api.new_participant(app_id, meeting["id"], "group_call_host", "Host")

    async def start_as_host(**body: Any) -> Any:
        return await api.call("POST", f"/{app_id}/recordings", token=host["token"], json=body)

    # Field rules (§2.3 check 5) and the body's meeting (6) answer first...
    response = await start_as_host(meeting_id=meeting["id"], max_seconds=30)
    assert_error(response, 400, 'BAD_REQUEST: "max_seconds" must be greater than or equal to 60')
    assert_error(
        await start_as_host(meeting_id=meeting["id"], url="https://x"), 400, 'BAD_REQUEST: "url" is not supported'
    )
    missing = "b3f6a2c4-1e5d-4a7b-9c8d-2f3e4a5b6c7d"
    response = await start_as_host(meeting_id=missing, max_seconds=60)
    assert_error(response, 404, f"No meeting found with id {missing}")
    # ...then this refusal, before the rules on the effective configuration (8) and the state (9).
    forbidden = "Participant is not allowed to perform this action"
    assert_error(await start_as_host(meeting_id=meeting["id"], video_config={"export_file": False}), 403, forbidden)
    inactive = await api.new_meeting(app_id, status="INACTIVE")
    late_host = await api.new_participant(app_id, inactive["id"], "group_call_host", "Late")
    response = await api.call(
        "POST",
        f"/{app_id}/recordings",
        token=late_host["token"],
        json={"meeting_id": inactive["id"], "max_seconds": 60},
    )
    assert_error(response, 403, forbidden)
    response = await api.call(
        "POST", f"/{app_id}/recordings", token=late_host["token"], json={"meeting_id": inactive["id"]}
    )
    assert_error(response, 409, f"Meeting {inactive['id']} is INACTIVE")


async def test_storage_secrets_are_never_echoed_nor_stored_in_clear(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    secrets = ("AKIA-SECRET-ACCESS", "wJalrXUtnFEMI-SECRET")
    storage = {
        "type": "aws",
        "access_key": secrets[0],
        "secret": secrets[1],
        "bucket": "b",
        "region": "us-east-1",
    }
    response = await start(api, app_id, meeting_id=meeting["id"], storage_config=storage)
    assert response.status_code == 200 and not any(s in response.text for s in secrets)
    rid = response.json()["data"]["id"]
    for path in (
        f"/{app_id}/recordings/{rid}",
        f"/{app_id}/recordings",
        f"/{app_id}/recordings/active-recording/{meeting['id']}",
    ):
        text = (await api.call("GET", path)).text
        assert rid in text and not any(s in text for s in secrets)
    async with api.services.db.read() as session:
        row = await session.get(Recording, rid)
        assert row is not None and row.storage_secrets and secrets[1] not in row.storage_secrets
        events = (await session.execute(select(WebhookEvent.body))).scalars().all()
    assert not any(s in body for body in events for s in secrets)
    assert api.services.secrets.open(row.storage_secrets) == {"access_key": secrets[0], "secret": secrets[1]}
    stopped = await act(api, app_id, rid, "stop")
    assert stopped.status_code == 200
    async with api.services.db.read() as session:
        row = await session.get(Recording, rid)
        assert row is not None and row.storage_secrets is None, "terminal recordings drop their secrets"


async def test_meeting_level_configuration_applies(api: Api, app_id: str) -> None:
    config = {"file_name_prefix": "from_meeting", "video_config": {"codec": "VP8"}, "max_seconds": 120}
    meeting = await api.new_meeting(app_id, recording_config=config)
    data = await started(api, app_id, meeting_id=meeting["id"])
    assert data["output_file_name"].startswith("from_meeting_") and data["output_file_name"].endswith(".webm")
    override = await api.new_meeting(app_id, recording_config=config)
    data = await started(
        api, app_id, meeting_id=override["id"], file_name_prefix="mine", video_config={"codec": "H264"}
    )
    assert data["output_file_name"].startswith("mine_") and data["output_file_name"].endswith(".mp4")


async def test_session_start_links_waiting_recordings_and_records_on_start(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    waiting = await started(api, app_id, meeting_id=meeting["id"])
    assert waiting["session_id"] is None
    participant = await api.new_participant(app_id, meeting["id"])
    peer = await peer_joined(api.services.db, meeting["id"], participant["id"], events=api.services.session_events)
    linked = await api.ok("GET", f"/{app_id}/recordings/{waiting['id']}")
    assert linked["session_id"] == peer.session_id

    automatic = await api.new_meeting(app_id, record_on_start=True, recording_config={"file_name_prefix": "auto"})
    nobody = await api.call("GET", f"/{app_id}/recordings/active-recording/{automatic['id']}")
    assert nobody.status_code == 404, "nobody joining means no recording"
    guest = await api.new_participant(app_id, automatic["id"], name="Early")
    peer = await peer_joined(api.services.db, automatic["id"], guest["id"], events=api.services.session_events)
    active = await api.ok("GET", f"/{app_id}/recordings/active-recording/{automatic['id']}")
    assert active["start_reason"] == {"reason": "RECORD_ON_START", "caller": None}
    assert active["session_id"] == peer.session_id and active["output_file_name"].startswith("auto_")


async def test_kick_all_stops_capturing_recordings(api: Api, app_id: str) -> None:
    meeting = await api.new_meeting(app_id)
    participant = await api.new_participant(app_id, meeting["id"])
    await peer_joined(api.services.db, meeting["id"], participant["id"], events=api.services.session_events)
    rid = (await started(api, app_id, meeting_id=meeting["id"]))["id"]
    await api.services.reports.capture_started(rid)
    await api.ok("PUT", f"/{app_id}/recordings/{rid}", json={"action": "pause"})
    kicked_at = utcnow()
    kicked = await api.ok("POST", f"/{app_id}/meetings/{meeting['id']}/active-session/kick-all")
    assert kicked["kicked_participants_count"] == 1
    # The session's end asks the recording to stop; with no recorder holding it, the reconciler ends it at once.
    stopped = await until_status(api, app_id, rid, "UPLOADING")
    assert stopped["stop_reason"] == {"reason": "ALL_PEERS_LEFT", "caller": None}
    assert abs((parse_iso8601(stopped["stopped_time"]) - kicked_at).total_seconds()) < 1, "stopped at the kick"


async def until_status(api: Api, app_id: str, rid: str, status: str, timeout_s: float = 5) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (recording := await api.ok("GET", f"/{app_id}/recordings/{rid}"))["status"] != status:
        assert asyncio.get_running_loop().time() < deadline, recording
        await asyncio.sleep(0.02)
    return recording
