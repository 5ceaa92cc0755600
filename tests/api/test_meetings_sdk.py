"""The official `cloudflare` SDK (5.9.0) drives every route of meetings.md unchanged."""

from __future__ import annotations

import cloudflare
import pytest
from cloudflare import AsyncCloudflare

from recordkit.meetings.sessions import peer_joined
from tests.helpers import ACCOUNT_ID, API_TOKEN, Api


async def test_the_sdk_manages_apps_meetings_participants_sessions_and_webhooks(api: Api) -> None:
    client = AsyncCloudflare(
        api_token=API_TOKEN, base_url="http://testserver/client/v4", http_client=api.client, max_retries=0
    )
    rk = client.realtime_kit
    app_id = (await rk.apps.post(account_id=ACCOUNT_ID, name="SDK")).data.app.id
    assert (await rk.apps.get(account_id=ACCOUNT_ID, search="SDK")).data[0].id == app_id
    presets = (await rk.presets.get(app_id, account_id=ACCOUNT_ID)).data
    host = await rk.presets.get_preset_by_id(presets[0].id, account_id=ACCOUNT_ID, app_id=app_id)
    assert host.data.permissions.can_record is True and host.data.config.view_type == "GROUP_CALL"
    with pytest.raises(cloudflare.APIStatusError) as refused:
        await rk.presets.delete(presets[0].id, account_id=ACCOUNT_ID, app_id=app_id)
    assert refused.value.status_code == 405

    ids = {"account_id": ACCOUNT_ID, "app_id": app_id}
    meeting_id = (await rk.meetings.create(app_id, account_id=ACCOUNT_ID, title="Weekly")).data.id
    assert (await rk.meetings.update_meeting_by_id(meeting_id, **ids, status="INACTIVE")).data.status == "INACTIVE"
    replaced = (await rk.meetings.replace_meeting_by_id(meeting_id, **ids, title="Weekly sync")).data
    assert replaced.title == "Weekly sync" and replaced.status == "INACTIVE"
    assert (await rk.meetings.get_meeting_by_id(meeting_id, **ids)).data.title == "Weekly sync"
    assert (await rk.meetings.get(app_id, account_id=ACCOUNT_ID, search="sync")).data[0].id == meeting_id

    added = await rk.meetings.add_participant(
        meeting_id, **ids, custom_participant_id="u1", preset_name="group_call_host", name="Mary"
    )
    person = {**ids, "meeting_id": meeting_id}
    participant_id = added.data.id
    assert added.data.token
    assert (await rk.meetings.edit_participant(participant_id, **person, name="Sue")).data.name == "Sue"
    assert (await rk.meetings.get_meeting_participant(participant_id, **person)).data.name == "Sue"
    assert (await rk.meetings.get_meeting_participants(meeting_id, **ids)).data[0].id == participant_id
    assert (await rk.meetings.refresh_participant_token(participant_id, **person)).data.token

    peer = await peer_joined(api.services.db, meeting_id, participant_id)
    assert (await rk.sessions.get_sessions(app_id, account_id=ACCOUNT_ID)).data.sessions[0].id == peer.session_id
    assert (await rk.sessions.get_session_details(peer.session_id, **ids)).data.status == "LIVE"
    people = (await rk.sessions.get_session_participants(peer.session_id, **ids)).data.participants
    assert [p.id for p in people] == [peer.id] and people[0].display_name == "Sue"
    assert (await rk.active_session.get_active_session(meeting_id, **ids)).data.id == peer.session_id
    kicked = (await rk.active_session.kick_all_participants(meeting_id, **ids)).data
    assert kicked.action == "kick-all" and kicked.kicked_participants_count == 1
    deleted = (await rk.meetings.delete_meeting_participant(participant_id, **person)).data
    assert deleted.custom_participant_id == "u1"

    hook = await rk.webhooks.create_webhook(
        app_id, account_id=ACCOUNT_ID, name="w", url="http://127.0.0.1/h", events=["recording.statusUpdate"]
    )
    webhook_id = hook.data.id
    assert [w.id for w in (await rk.webhooks.get_webhooks(app_id, account_id=ACCOUNT_ID)).data] == [webhook_id]
    assert (await rk.webhooks.edit_webhook(webhook_id, **ids, enabled=False)).data.enabled is False
    replaced_hook = await rk.webhooks.replace_webhook(
        webhook_id, **ids, name="x", url="http://a.example/", events=["meeting.ended"]
    )
    assert replaced_hook.data.enabled is True and replaced_hook.data.events == ["meeting.ended"]
    assert (await rk.webhooks.get_webhook_by_id(webhook_id, **ids)).data.name == "x"
    assert (await rk.webhooks.delete_webhook(webhook_id, **ids)).data.id == webhook_id
