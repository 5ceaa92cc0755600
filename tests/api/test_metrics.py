"""`GET /metrics` (issue 14, observability): what a Prometheus scrape sees after a real recording, the
recordings counted by state from the database (SQLite and PostgreSQL), and the optional scrape token."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from contextlib import AsyncExitStack
from pathlib import Path

import httpx

from recordkit.app import create_app
from recordkit.bot.client import join
from recordkit.bot.synthetic import EncodedLoopAudioTrack, EncodedLoopVideoTrack, SyntheticClock
from recordkit.config import build_settings
from recordkit.recorder.composite import STILL_TICKS
from recordkit.recorder.stages import STAGES
from tests.helpers import BASE, CREDENTIALS_ENV, Api
from tests.recorder.test_composite_e2e import until_status
from tests.support.media import Setup, ThreadServer
from tests.support.metrics import metric
from tests.support.recorder import server, setup  # noqa: F401 (fixtures)
from tests.support.webhook_receiver import webhook_receiver

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


async def scrape(base_url: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url) as client:
        return await client.get("/metrics", headers=headers)


async def scrape_once_settled(base_url: str, timeout_s: float = 30) -> httpx.Response:
    """A scrape taken once the upload job and the four webhook deliveries (INVOKED, RECORDING, UPLOADING,
    UPLOADED) were counted: each is counted just after the effect a caller sees."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await scrape(base_url)
        upload = metric(response.text, "recordkit_job_attempts_total", kind="upload")
        if (upload and metric(response.text, "recordkit_webhook_deliveries_total") >= 4) or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.1)


async def test_a_recording_shows_in_the_metrics_from_capture_to_upload_and_webhook(
    server: ThreadServer,  # noqa: F811
    setup: Setup,  # noqa: F811
) -> None:
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    token = (await asyncio.to_thread(setup.participant, app_id, meeting_id, "Ada"))["token"]
    async with webhook_receiver(server.services.webhook_signer.public_key_pem) as receiver, AsyncExitStack() as bots:
        hook = {"name": "metrics", "url": receiver.url, "events": ["recording.statusUpdate"]}
        await asyncio.to_thread(setup.data, "POST", f"/{app_id}/webhooks", 201, json=hook)
        clock = SyntheticClock()
        audio, video = EncodedLoopAudioTrack(clock), EncodedLoopVideoTrack(clock, label="Ada")
        await bots.enter_async_context(join(server.base_url, meeting_id, token, audio=audio, video=video))
        path = f"/{app_id}/recordings"
        rid = (await asyncio.to_thread(setup.data, "POST", path, json={"meeting_id": meeting_id}))["id"]
        assert (await until_status(setup, app_id, rid, {"RECORDING"}))["status"] == "RECORDING"
        await asyncio.sleep(2)
        await asyncio.to_thread(setup.data, "PUT", f"{path}/{rid}", json={"action": "stop"})
        assert (await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"}))["status"] == "UPLOADED"
        response = await scrape_once_settled(server.base_url)
        assert len(receiver.unique()) == 4

    assert response.status_code == 200
    assert response.headers["content-type"] == PROMETHEUS_TEXT
    text = response.text
    assert metric(text, "recordkit_recordings", state="UPLOADED") == 1
    assert metric(text, "recordkit_recordings", state="RECORDING") == 0
    assert metric(text, "recordkit_encode_seconds_total") > 0
    # The worker thread's CPU by stage: each stage did work, and CPU never exceeds the wall time spent rendering.
    stage_cpu_s = {stage: metric(text, "recordkit_recorder_cpu_seconds_total", stage=stage) for stage in STAGES}
    assert all(stage_cpu_s[stage] > 0 for stage in ("video_decode", "video_encode", "audio_decode", "audio_encode"))
    assert sum(stage_cpu_s.values()) <= metric(text, "recordkit_encode_seconds_total")
    # One observation per pass of the output loop: a pass renders one frame, or up to six while the picture
    # stands still (composite.STILL_TICKS), for two seconds and more at 30 fps.
    assert metric(text, "recordkit_capture_lag_seconds_count") >= 2 * 30 / STILL_TICKS
    assert metric(text, "recordkit_capture_lag_seconds_sum") >= 0
    assert metric(text, "recordkit_job_attempts_total", kind="record", outcome="done") == 1
    assert metric(text, "recordkit_job_attempts_total", kind="upload", outcome="done") == 1
    assert metric(text, "recordkit_job_queue_wait_seconds_count", kind="record") == 1
    assert metric(text, "recordkit_job_queue_wait_seconds_count", kind="upload") == 1
    assert metric(text, "recordkit_uploads_total", target="builtin", outcome="confirmed") == 1
    assert metric(text, "recordkit_upload_bytes_total", target="builtin") > 10_000
    assert metric(text, "recordkit_webhook_deliveries_total", outcome="delivered") == 4
    assert metric(text, "recordkit_webhook_deliveries_total", outcome="retry") == 0


async def test_recordings_are_counted_by_state_from_the_database(api: Api) -> None:
    app_id = await api.new_app()
    meeting = await api.new_meeting(app_id)
    await api.ok("POST", f"/{app_id}/recordings", json={"meeting_id": meeting["id"]})
    response = await api.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"] == PROMETHEUS_TEXT
    counts = {
        state: metric(response.text, "recordkit_recordings", state=state)
        for state in ("INVOKED", "RECORDING", "PAUSED", "UPLOADING", "UPLOADED", "ERRORED")
    }
    assert counts == {"INVOKED": 1, "RECORDING": 0, "PAUSED": 0, "UPLOADING": 0, "UPLOADED": 0, "ERRORED": 0}
    assert (await api.client.get(f"{BASE}/metrics", headers=api.auth)).status_code == 404, "not a RealtimeKit route"


async def test_a_metrics_token_closes_the_scrape_to_everyone_else(database_url: str, tmp_path: Path) -> None:
    settings, _ = build_settings(tmp_path, database_url, "http://testserver", environ=CREDENTIALS_ENV)
    app = create_app(dataclasses.replace(settings, metrics_token="scrape-secret"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        refused = [
            await client.get("/metrics"),
            await client.get("/metrics", headers={"Authorization": "Bearer scrape-wrong"}),
            # The API token can do everything else; a scraper is not given it.
            await client.get("/metrics", headers={"Authorization": f"Bearer {settings.credentials.api_token}"}),
        ]
        allowed = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    await app.state.services.db.close()
    assert [response.status_code for response in refused] == [401, 401, 401]
    assert allowed.status_code == 200 and "recordkit_recordings" in allowed.text
