"""The browser join page GET /meet/{meeting_id} (meetings.md §8): who gets the page, who gets which error."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from recordkit.meetings.tokens import ParticipantClaims, ParticipantTokens
from tests.helpers import ACCOUNT_ID, API_TOKEN, CREDENTIALS_ENV, Api
from tests.support.server import recordkit_serve


async def meeting_with_participant(api: Api, **meeting: object) -> tuple[str, str, dict[str, object]]:
    """A new app, a meeting in it and one participant; returns (app id, meeting id, participant)."""
    app_id = await api.new_app()
    meeting_id = (await api.new_meeting(app_id, title="Standup", **meeting))["id"]
    return app_id, meeting_id, await api.new_participant(app_id, meeting_id, name="Ada")


async def open_page(api: Api, meeting_id: str, token: str | None) -> httpx.Response:
    params = {"authToken": token} if token is not None else {}
    return await api.client.get(f"/meet/{meeting_id}", params=params)


def assert_error_page(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text and f"HTTP {status}" in response.text


async def test_participant_gets_the_page_that_joins_the_meeting(api: Api) -> None:
    _, meeting_id, participant = await meeting_with_participant(api)

    response = await open_page(api, meeting_id, str(participant["token"]))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/meet/meet.js">' in response.text
    assert 'id="leave"' in response.text and 'id="mic"' in response.text and 'id="cam"' in response.text
    # The URL holds a token: never cached, never sent on as a referrer.
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_bearer_header_works_like_the_query_token(api: Api) -> None:
    _, meeting_id, participant = await meeting_with_participant(api)

    response = await api.client.get(f"/meet/{meeting_id}", headers={"Authorization": f"Bearer {participant['token']}"})

    assert response.status_code == 200


@pytest.mark.parametrize(("name", "media_type"), [("meet.js", "text/javascript"), ("meet.css", "text/css")])
async def test_page_assets_are_served(api: Api, name: str, media_type: str) -> None:
    response = await api.client.get(f"/static/meet/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)


async def test_missing_or_bad_token_is_401(api: Api) -> None:
    _, meeting_id, participant = await meeting_with_participant(api)
    token = str(participant["token"])
    claims = ParticipantClaims(ACCOUNT_ID, "app", meeting_id, str(participant["id"]))

    forged = ParticipantTokens("another key, 32 bytes or longer, for HS256").issue(claims)

    for bad in (None, "", "not-a-jwt", token[:-4] + "AAAA", forged):
        assert_error_page(await open_page(api, meeting_id, bad), 401, "Unauthorized")


async def test_expired_token_is_401(api: Api) -> None:
    app_id, meeting_id, participant = await meeting_with_participant(api)
    past = datetime.now(UTC) - timedelta(days=1)
    payload = {
        "accountId": ACCOUNT_ID,
        "appId": app_id,
        "meetingId": meeting_id,
        "participantId": participant["id"],
        "iat": past - timedelta(days=100),
        "exp": past,
    }
    expired = jwt.encode(payload, api.services.settings.credentials.participant_token_key, algorithm="HS256")

    assert_error_page(await open_page(api, meeting_id, expired), 401, "Unauthorized")


async def test_removed_participant_token_is_401(api: Api) -> None:
    app_id, meeting_id, participant = await meeting_with_participant(api)
    await api.ok("DELETE", f"/{app_id}/meetings/{meeting_id}/participants/{participant['id']}")

    assert_error_page(await open_page(api, meeting_id, str(participant["token"])), 401, "Unauthorized")


async def test_api_token_is_403(api: Api) -> None:
    _, meeting_id, _ = await meeting_with_participant(api)

    assert_error_page(await open_page(api, meeting_id, API_TOKEN), 403, "not allowed")


async def test_token_of_another_meeting_is_403(api: Api) -> None:
    app_id, meeting_id, _ = await meeting_with_participant(api)
    other_meeting = (await api.new_meeting(app_id, title="Other"))["id"]
    other = await api.new_participant(app_id, other_meeting, name="Bob")

    assert_error_page(await open_page(api, meeting_id, str(other["token"])), 403, "not allowed")


async def test_unknown_meeting_is_404(api: Api) -> None:
    _, _, participant = await meeting_with_participant(api)
    unknown = "0b7f6c1e-2d3a-4b5c-8d9e-0f1a2b3c4d5e"
    other_app_meeting = (await meeting_with_participant(api))[1]

    for meeting_id in (unknown, other_app_meeting):
        response = await open_page(api, meeting_id, str(participant["token"]))
        assert_error_page(response, 404, f"No meeting found with id {meeting_id}")


async def test_inactive_meeting_is_409(api: Api) -> None:
    _, meeting_id, participant = await meeting_with_participant(api, status="INACTIVE")

    response = await open_page(api, meeting_id, str(participant["token"]))

    assert_error_page(response, 409, f"Meeting {meeting_id} is INACTIVE")


async def test_error_text_is_escaped(api: Api) -> None:
    _, _, participant = await meeting_with_participant(api)

    response = await open_page(api, "<img src=x onerror=alert(1)>", str(participant["token"]))

    assert response.status_code == 404
    assert "<img" not in response.text and "&lt;img src=x onerror=alert(1)&gt;" in response.text


async def test_token_stays_out_of_the_app_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    _, meeting_id, participant = await meeting_with_participant(api)
    token = str(participant["token"])

    with caplog.at_level(logging.DEBUG):
        await open_page(api, meeting_id, token)
        await open_page(api, meeting_id, token[:-4] + "AAAA")

    # httpx, the test's own client, logs the URLs it calls; the app must not.
    app_lines = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    assert not any(token[:-4] in line for line in app_lines)


def test_real_server_does_not_log_the_token(tmp_path: Path) -> None:
    base = f"/client/v4/accounts/{ACCOUNT_ID}/realtime/kit"
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    with (
        recordkit_serve(tmp_path / "data", env=CREDENTIALS_ENV) as served,
        httpx.Client(base_url=served.base_url) as client,
    ):
        app_id = client.post(f"{base}/apps", json={"name": "Logs"}, headers=auth).json()["data"]["app"]["id"]
        meeting_id = client.post(f"{base}/{app_id}/meetings", json={}, headers=auth).json()["data"]["id"]
        body = {"custom_participant_id": "u1", "preset_name": "group_call_host", "name": "Ada"}
        added = client.post(f"{base}/{app_id}/meetings/{meeting_id}/participants", json=body, headers=auth)
        token = added.json()["data"]["token"]

        assert client.get(f"/meet/{meeting_id}", params={"authToken": token}).status_code == 200
        assert client.get(f"/meet/{meeting_id}", params={"authToken": token + "x"}).status_code == 401

        log = served.log()
    assert f"/meet/{meeting_id}?authToken=REDACTED" in log
    assert token not in log and token.split(".")[1] not in log
