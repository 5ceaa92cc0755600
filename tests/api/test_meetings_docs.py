"""What /openapi.json promises for the routes of meetings.md is what they answer.

Each answer is checked strictly against the documented response model (api/docs.py), so a field
that can be null but is documented as not nullable, or an int documented as a string, fails here.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel

from recordkit.api import docs
from recordkit.meetings.sessions import peer_joined
from tests.helpers import Api

STORAGE = {"type": "aws", "access_key": "a", "secret": "s", "bucket": "b", "region": "r"}


def conforms(model: type[BaseModel], response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return getattr(model.model_validate_json(response.text, strict=True), "data", None)


async def test_every_answer_matches_its_documented_model(api: Api) -> None:
    app = conforms(docs.Envelope[docs.AppCreated], await api.call("POST", "/apps", json={"name": "Docs"}), 201)
    app_id = app.app.id
    conforms(docs.PagedEnvelope[list[docs.AppModel]], await api.call("GET", "/apps"))

    presets = conforms(docs.PagedEnvelope[list[docs.PresetSummary]], await api.call("GET", f"/{app_id}/presets"))
    conforms(docs.Envelope[docs.PresetModel], await api.call("GET", f"/{app_id}/presets/{presets[0].id}"))
    conforms(docs.ErrorEnvelope, await api.call("POST", f"/{app_id}/presets", json={}), 405)

    bare = await api.call("POST", f"/{app_id}/meetings", json={})
    conforms(docs.Envelope[docs.MeetingModel], bare, 201)
    full = {"title": "T", "ai_config": {}, "recording_config": {"storage_config": STORAGE}}
    meeting = conforms(docs.Envelope[docs.MeetingModel], await api.call("POST", f"/{app_id}/meetings", json=full), 201)
    one = f"/{app_id}/meetings/{meeting.id}"
    conforms(docs.PagedEnvelope[list[docs.MeetingModel]], await api.call("GET", f"/{app_id}/meetings"))
    conforms(docs.Envelope[docs.MeetingModel], await api.call("GET", one))
    conforms(docs.Envelope[docs.MeetingModel], await api.call("PATCH", one, json={"title": None}))
    conforms(docs.Envelope[docs.MeetingModel], await api.call("PUT", one, json={}))

    people = f"{one}/participants"
    body = {"custom_participant_id": "u", "preset_name": "group_call_host"}
    added = conforms(docs.Envelope[docs.ParticipantWithToken], await api.call("POST", people, json=body), 201)
    person = f"{people}/{added.id}"
    conforms(docs.PagedEnvelope[list[docs.ParticipantModel]], await api.call("GET", people))
    conforms(docs.Envelope[docs.ParticipantModel], await api.call("GET", person))
    conforms(docs.Envelope[docs.ParticipantModel], await api.call("PATCH", person, json={"name": "N"}))
    conforms(docs.Envelope[docs.TokenModel], await api.call("POST", f"{person}/token"))

    peer = await peer_joined(api.services.db, meeting.id, added.id)
    conforms(docs.PagedEnvelope[docs.SessionList], await api.call("GET", f"/{app_id}/sessions"))
    conforms(docs.Envelope[docs.SessionModel], await api.call("GET", f"/{app_id}/sessions/{peer.session_id}"))
    conforms(
        docs.PagedEnvelope[docs.SessionParticipantList],
        await api.call("GET", f"/{app_id}/sessions/{peer.session_id}/participants"),
    )
    conforms(docs.Envelope[docs.SessionModel], await api.call("GET", f"{one}/active-session"))
    conforms(docs.Envelope[docs.KickAll], await api.call("POST", f"{one}/active-session/kick-all"))
    conforms(docs.ErrorEnvelope, await api.call("GET", f"{one}/active-session"), 404)
    ended = conforms(docs.Envelope[docs.SessionModel], await api.call("GET", f"/{app_id}/sessions/{peer.session_id}"))
    assert ended.status == "ENDED"
    conforms(docs.Envelope[docs.ParticipantDeleted], await api.call("DELETE", person))

    hook = {"name": "H", "url": "http://127.0.0.1/h", "events": ["recording.statusUpdate"]}
    created = conforms(docs.Envelope[docs.WebhookModel], await api.call("POST", f"/{app_id}/webhooks", json=hook), 201)
    webhook = f"/{app_id}/webhooks/{created.id}"
    conforms(docs.Envelope[list[docs.WebhookModel]], await api.call("GET", f"/{app_id}/webhooks"))
    conforms(docs.Envelope[docs.WebhookModel], await api.call("GET", webhook))
    conforms(docs.Envelope[docs.WebhookModel], await api.call("PATCH", webhook, json={"enabled": False}))
    conforms(docs.Envelope[docs.WebhookModel], await api.call("PUT", webhook, json=hook))
    conforms(docs.Envelope[docs.WebhookModel], await api.call("DELETE", webhook))
