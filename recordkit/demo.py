"""`recordkit demo`: the whole product in one command — a service, a meeting with two synthetic
participants, a ten-second recording, and what ffprobe says of the file behind its signed link."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from recordkit.app import create_app
from recordkit.bot.client import join
from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock, SyntheticVideoTrack
from recordkit.config import build_settings
from recordkit.db.migrate import upgrade


async def run_demo(host: str, port: int, data_dir: Path | None, seconds: float, keep_serving: bool) -> int:
    """Run the demo; returns the process exit code."""
    folder = data_dir or Path(tempfile.mkdtemp(prefix="recordkit-demo-"))
    public_url = f"http://{host}:{port}"
    settings, _ = build_settings(folder, None, public_url)
    await asyncio.to_thread(upgrade, settings.database_url)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            return 1
        await asyncio.sleep(0.05)
    say(f"recordkit is serving at {public_url} (data in {folder})")
    creds = settings.credentials
    base = f"{public_url}/client/v4/accounts/{creds.account_id}/realtime/kit"
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {creds.api_token}"}) as api:
        app_id = (await call(api, "POST", "/apps", json={"name": "demo"}))["app"]["id"]
        meeting = await call(api, "POST", f"/{app_id}/meetings", json={"title": "recordkit demo"})
        recording = await record_with_bots(api, public_url, app_id, meeting["id"], seconds)
    if recording["status"] != "UPLOADED":
        say(f"the recording ended {recording['status']}: {json.dumps(recording)}")
        return 1
    target = folder / "downloads" / recording["output_file_name"]
    target.parent.mkdir(exist_ok=True)
    async with httpx.AsyncClient() as plain:
        target.write_bytes((await plain.get(recording["download_url"])).content)
    say(f"download URL (valid until {recording['download_url_expiry']}):\n  {recording['download_url']}")
    say(f"ffprobe of {target}:\n{describe(target)}")
    if keep_serving:
        say("serving until Ctrl-C, so the link keeps working")
        await serving
    else:
        server.should_exit = True
        await serving
    return 0


async def record_with_bots(
    api: httpx.AsyncClient, public_url: str, app_id: str, meeting_id: str, seconds: float
) -> dict[str, Any]:
    async with AsyncExitStack() as bots:
        for name in ("Ada", "Grace"):
            body = {"custom_participant_id": name.lower(), "preset_name": "group_call_host", "name": name}
            token = (await call(api, "POST", f"/{app_id}/meetings/{meeting_id}/participants", json=body))["token"]
            clock = SyntheticClock()
            video, audio = SyntheticVideoTrack(clock, label=name), SyntheticAudioTrack(clock)
            await bots.enter_async_context(join(public_url, meeting_id, token, audio=audio, video=video))
            say(f"{name} joined the meeting")
        started = await call(api, "POST", f"/{app_id}/recordings", json={"meeting_id": meeting_id})
        say(f"recording {started['id']} started; recording {seconds:g} s")
        await asyncio.sleep(seconds)
        stopped = await call(api, "PUT", f"/{app_id}/recordings/{started['id']}", json={"action": "stop"})
        say(f"stopped: {stopped['status']}, {stopped['file_size']} bytes")
    for _ in range(100):
        recording = await call(api, "GET", f"/{app_id}/recordings/{started['id']}")
        if recording["status"] in ("UPLOADED", "ERRORED"):
            return recording
        await asyncio.sleep(0.1)
    return recording


async def call(api: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    response = await api.request(method, path, **kwargs)
    response.raise_for_status()
    return response.json()["data"]


def describe(path: Path) -> str:
    """ffprobe's view of the file (stream codecs, size, duration), or PyAV's when ffprobe is absent."""
    if shutil.which("ffprobe"):
        command = ["ffprobe", "-v", "error", "-show_entries",
                   "format=duration,size:stream=codec_type,codec_name,width,height,channels,sample_rate",
                   "-of", "default=noprint_wrappers=1", str(path)]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout
    import av

    with av.open(str(path)) as container:
        streams = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams)
        return f"{streams}; duration {container.duration / 1_000_000:.2f} s"


def say(text: str) -> None:
    print(text, flush=True)
