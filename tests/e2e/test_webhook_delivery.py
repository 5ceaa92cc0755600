"""`recording.statusUpdate` delivered to a real receiver (issue 12, acceptance 1–3 for recording events).

The receiver (tests/support/webhook_receiver.py) checks each `rtk-signature` with the key from
`/.well-known/webhooks.json` using `cryptography`, so an unsigned, mis-signed or altered body is refused.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from recordkit.bot.client import join
from recordkit.bot.synthetic import EncodedLoopAudioTrack, EncodedLoopVideoTrack, SyntheticClock
from tests.helpers import CREDENTIALS_ENV
from tests.recorder.test_composite_e2e import until_status
from tests.support.media import Setup, ThreadServer
from tests.support.server import recordkit_serve
from tests.support.webhook_receiver import Receiver, public_key, verifies, webhook_receiver

LIFE = ["INVOKED", "RECORDING", "PAUSED", "RECORDING", "UPLOADING", "UPLOADED"]


def published_key(base_url: str) -> str:
    answer = httpx.get(f"{base_url}/.well-known/webhooks.json").json()
    assert answer["success"] is True and answer["message"] == ""
    return str(answer["data"]["publicKey"])


async def webhook(setup: Setup, app_id: str, url: str) -> str:
    body = {"name": "receiver", "url": url, "events": ["recording.statusUpdate"]}
    return str((await asyncio.to_thread(setup.data, "POST", f"/{app_id}/webhooks", 201, json=body))["id"])


async def paused_recording(
    base_url: str, setup: Setup, app_id: str, before_stop: Callable[[], Awaitable[None]] | None = None
) -> str:
    """A bot-driven recording paused and resumed once, then stopped; its id."""
    _, meeting_id = await asyncio.to_thread(setup.meeting, app_id)
    token = (await asyncio.to_thread(setup.participant, app_id, meeting_id, "Ada"))["token"]
    clock = SyntheticClock()
    async with AsyncExitStack() as stack:
        audio, video = EncodedLoopAudioTrack(clock), EncodedLoopVideoTrack(clock, label="Ada")
        await stack.enter_async_context(join(base_url, meeting_id, token, audio=audio, video=video))
        path = f"/{app_id}/recordings"
        rid = (await asyncio.to_thread(setup.data, "POST", path, json={"meeting_id": meeting_id}))["id"]
        assert (await until_status(setup, app_id, rid, {"RECORDING"}))["status"] == "RECORDING"
        for action in ("pause", "resume", "stop"):
            await asyncio.sleep(1)
            if action == "stop" and before_stop is not None:
                await before_stop()
            await asyncio.to_thread(setup.data, "PUT", f"{path}/{rid}", json={"action": action})
    return str(rid)


async def statuses_of(receiver: Receiver, rid: str, count: int, timeout_s: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        mine = [item.payload for item in receiver.unique() if item.payload["recording"]["id"] == rid]
        if len(mine) >= count or time.monotonic() > deadline:
            return mine
        await asyncio.sleep(0.2)


async def test_every_status_of_a_paused_recording_arrives_signed_in_order(server: ThreadServer, setup: Setup) -> None:
    app_id = (await asyncio.to_thread(setup.meeting))[0]
    async with webhook_receiver(published_key(server.base_url)) as receiver:
        webhook_id = await webhook(setup, app_id, receiver.url)
        rid = await paused_recording(server.base_url, setup, app_id)
        payloads = await statuses_of(receiver, rid, len(LIFE))
    assert [payload["recording"]["status"] for payload in payloads] == LIFE
    assert receiver.bad_signatures == 0
    first = receiver.unique()[0]
    assert first.headers["rtk-webhook-id"] == first.headers["dyte-webhook-id"] == webhook_id
    assert first.headers["dyte-signature"] == first.headers["rtk-signature"]
    assert first.headers["dyte-uuid"] == first.uuid and first.headers["Content-Type"] == "application/json"
    done = payloads[-1]
    assert done["event"] == "recording.statusUpdate" and list(done) == ["event", "recording", "meeting"]
    assert done["recording"]["downloadUrl"].startswith(server.base_url + "/files/")
    assert done["recording"]["organizationId"] == app_id and done["meeting"]["organizedBy"]["id"] == app_id
    assert done["meeting"]["status"] == "LIVE" and done["recording"]["stopReason"]["reason"] == "API_CALL"


async def test_a_tampered_body_fails_verification(server: ThreadServer, setup: Setup) -> None:
    app_id = (await asyncio.to_thread(setup.meeting))[0]
    async with webhook_receiver(published_key(server.base_url)) as receiver:
        await webhook(setup, app_id, receiver.url)
        _, meeting_id = await asyncio.to_thread(setup.meeting, app_id)
        await asyncio.to_thread(setup.data, "POST", f"/{app_id}/recordings", json={"meeting_id": meeting_id})
        await receiver.wait_for_requests(1, timeout_s=10)
    (delivered, *_) = receiver.accepted
    signature = delivered.headers["rtk-signature"]
    key = public_key(published_key(server.base_url))
    assert verifies(key, delivered.body, signature)
    tampered = delivered.body.replace(b'"status":"INVOKED"', b'"status":"UPLOADED"')
    assert tampered != delivered.body and not verifies(key, tampered, signature)
    assert not verifies(key, delivered.body + b" ", signature)


@pytest.mark.parametrize("code", [400, 307])
async def test_a_4xx_or_3xx_is_not_retried_nor_followed_and_shows_in_the_deliveries(
    server: ThreadServer, setup: Setup, code: int
) -> None:
    app_id = (await asyncio.to_thread(setup.meeting))[0]
    async with webhook_receiver(published_key(server.base_url), answer=lambda _: code) as receiver:
        webhook_id = await webhook(setup, app_id, receiver.url)
        _, meeting_id = await asyncio.to_thread(setup.meeting, app_id)
        path = f"/{app_id}/recordings"
        rid = (await asyncio.to_thread(setup.data, "POST", path, json={"meeting_id": meeting_id}))["id"]
        await receiver.wait_for_requests(1, timeout_s=10)
        await asyncio.sleep(3)  # a retry would have come after 1 s
        await asyncio.to_thread(setup.data, "PUT", f"{path}/{rid}", json={"action": "stop"})
    assert receiver.uuids and len(set(receiver.uuids)) == len(receiver.uuids), "no delivery was tried twice"
    listing = await asyncio.to_thread(setup.http.get, f"/{app_id}/webhooks/{webhook_id}/deliveries")
    deliveries = listing.json()["data"]
    oldest = deliveries[-1]  # newest first
    assert (oldest["id"], oldest["event"], oldest["status"], oldest["attempts"]) == (
        receiver.uuids[0], "recording.statusUpdate", "FAILED", 1,
    )  # fmt: skip
    assert (oldest["last_status_code"], oldest["last_error"]) == (code, f"HTTP {code}")
    assert oldest["finished_at"] is not None
    assert listing.json()["paging"]["total_count"] == len(deliveries)


async def test_three_500s_and_a_restart_while_the_receiver_is_down_lose_nothing(tmp_path: Path) -> None:
    """The receiver refuses the first three tries, then goes away before the recording is stopped; recordkit
    stops (SIGTERM) and starts again while it is away; it comes back on the same port. Takes about 30 s."""
    data_dir = tmp_path / "data"
    with recordkit_serve(data_dir, env=CREDENTIALS_ENV) as served:
        key_pem = published_key(served.base_url)
        setup = Setup(served.base_url)
        app_id = (await asyncio.to_thread(setup.meeting))[0]
        first = Receiver(public_key(key_pem), answer=lambda n: 500 if n < 3 else 200)
        await first.start()
        await webhook(setup, app_id, first.url)

        async def refused_thrice_then_away() -> None:
            await first.wait_for_requests(4, timeout_s=30)  # the 4th try (after 1, 2 and 4 s) is taken
            await first.stop()

        rid = await paused_recording(served.base_url, setup, app_id, before_stop=refused_thrice_then_away)
        assert (await until_status(setup, app_id, rid, {"UPLOADED"}))["status"] == "UPLOADED"
        os.kill(served.pid, signal.SIGTERM)
        served.process.wait(30)
        setup.close()
    with recordkit_serve(data_dir, env=CREDENTIALS_ENV):
        back = Receiver(public_key(key_pem), port=first.port)
        await back.start()
        try:
            await statuses_of(back, rid, len(LIFE) - len(first.unique()), timeout_s=60)
        finally:
            await back.stop()
    received = first.unique() + back.unique()
    assert first.requests >= 4 and 0 < len(first.accepted) < len(LIFE), "refused three times, then away"
    assert [item.payload["recording"]["status"] for item in received] == LIFE
    assert len({item.uuid for item in received}) == len(LIFE), "each delivery once after de-duplication by rtk-uuid"


async def test_the_meeting_events_arrive_signed_in_order_with_their_fields(server: ThreadServer, setup: Setup) -> None:
    app_id, meeting_id = await asyncio.to_thread(setup.meeting, None, session_keep_alive_time_in_secs=0)
    events = ["meeting.started", "meeting.participantJoined", "meeting.participantLeft", "meeting.ended"]
    async with webhook_receiver(published_key(server.base_url)) as receiver:
        body = {"name": "meetings", "url": receiver.url, "events": events}
        await asyncio.to_thread(setup.data, "POST", f"/{app_id}/webhooks", 201, json=body)
        participant = await asyncio.to_thread(setup.participant, app_id, meeting_id, "Ada")
        clock = SyntheticClock()
        async with join(server.base_url, meeting_id, participant["token"], audio=EncodedLoopAudioTrack(clock)) as peer:
            await asyncio.sleep(0.5)
        await receiver.wait_for_requests(4, timeout_s=15)
    payloads = [item.payload for item in receiver.unique()]
    assert [payload["event"] for payload in payloads] == events and receiver.bad_signatures == 0
    started, joined, left, ended = payloads
    session_id = started["meeting"]["sessionId"]
    assert started == {"event": "meeting.started", "meeting": started["meeting"], "reason": None}
    assert started["meeting"]["id"] == meeting_id and started["meeting"]["status"] == "LIVE"
    assert list(joined["participant"]) == [
        "id", "peerId", "userDisplayName", "customParticipantId", "presetName", "joinedAt", "leftAt",
    ]  # fmt: skip
    assert (joined["participant"]["id"], joined["participant"]["peerId"]) == (participant["id"], peer.peer_id)
    assert joined["participant"]["customParticipantId"] == "user-Ada" and joined["participant"]["leftAt"] is None
    assert left["participant"]["leftAt"] is not None and left["meeting"]["sessionId"] == session_id
    assert (ended["reason"], ended["meeting"]["status"], ended["meeting"]["sessionId"]) == (
        "ALL_PEERS_LEFT", "ENDED", session_id,
    )  # fmt: skip
