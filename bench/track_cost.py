"""What a track recording costs the server: cores per recorded audio track and per recorded video track.

Issue 6, acceptance 5. A real ``recordkit serve`` runs in a subprocess (SQLite in a temp data dir, log level
``warning``); four bots join one meeting from *another* subprocess, each publishing the synthetic 640x360@30
VP8 video and Opus audio of ``recordkit.bot.synthetic`` as pre-encoded one-second loops
(``EncodedLoopVideoTrack``/``EncodedLoopAudioTrack``: no encoding, and none of their CPU is the server's). CPU
is utime+stime of the server process (all threads) from ``/proc/<pid>/stat``, per wall second.

Windows, each ``--seconds`` long after a settling pause: idle (bots connected, nothing recorded), then
``--rounds`` times an audio track recording (4 audio tracks), idle, a video-layer track recording (4 audio +
4 video tracks), idle. The media plane's own receiving is in every window, so a recording's cost is its
window minus the mean of the idle windows on either side, averaged over the rounds:

* per audio track = (audio window − idle) / 4
* per video track = (video window − idle) / 4 − per audio track

The machine may be shared, so the idle windows' spread is printed as the noise floor, and beside it the CPU of
the threads the recording started (its file-writing worker: the muxing and the disk), a direct figure without
that noise which leaves out only the event loop's share (handing each packet to the worker's queue).

After each recording the files are downloaded and checked (ffprobe: codec, duration against the recorded span;
the bots' video loops have a keyframe once a second, so video files start up to 1 s after the recording does).
The target (issue 6: ≤ 0.02 core per audio track) is printed next to the figure. It is a benchmark: it prints,
and never asserts. The bots' CPU is printed too.

Run from the repository root::

    .venv/bin/python -m bench.track_cost                          # 2 rounds of 20 s windows, about 4 minutes
    .venv/bin/python -m bench.track_cost --seconds 30 --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/track_cost.py` needs the root for `recordkit`
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.support import Api, bench_server, cpu_seconds, thread_cpu_seconds  # noqa: E402
from recordkit.bot.client import join  # noqa: E402
from recordkit.bot.synthetic import EncodedLoopAudioTrack, EncodedLoopVideoTrack, SyntheticClock  # noqa: E402
from recordkit.clock import parse_iso8601  # noqa: E402

PARTICIPANTS = 4
TARGET_AUDIO_CORES = 0.02
SETTLE_S = 3.0
POLL_S = 0.05  # between GETs of a recording's status


async def cores_over(pids: list[int], seconds: float) -> list[float]:
    """CPU seconds per wall second of each process over the next `seconds`."""
    before = [cpu_seconds(pid) for pid in pids]
    started = time.monotonic()
    await asyncio.sleep(seconds)
    wall_s = time.monotonic() - started
    return [(cpu_seconds(pid) - b) / wall_s for pid, b in zip(pids, before, strict=True)]


@contextlib.contextmanager
def running(command: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess for the duration of the block, stopped with SIGTERM (then SIGKILL) afterwards."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Row:
    label: str
    server_cores: float
    bot_cores: float
    files: str = ""
    worker_cores: float = 0.0  # threads the recording started (its file-writing worker)


async def record(api: Api, meeting_id: str, media_kind: str, pids: list[int], seconds: float, work: Path) -> Row:
    """One track recording: measured for `seconds` once it runs, then stopped, uploaded and its files checked."""
    body = {"meeting_id": meeting_id, "layers": {"bench": {"file_name_prefix": "bench", "media_kind": media_kind}}}
    known = set(thread_cpu_seconds(pids[0]))
    started = await api.data("POST", f"/{api.app_id}/recordings/track", json=body)
    rid = started["recording"]["id"]
    recording, _ = await api.until(rid, {"RECORDING"}, POLL_S)
    if recording["status"] != "RECORDING":
        raise RuntimeError(f"the recording did not start: {recording}")
    await asyncio.sleep(SETTLE_S)
    threads_before, wall_before = thread_cpu_seconds(pids[0]), time.monotonic()
    server_cores, bot_cores = await cores_over(pids, seconds)
    threads_after, wall_s = thread_cpu_seconds(pids[0]), time.monotonic() - wall_before
    new = set(threads_after) - known
    worker_cores = sum(threads_after[tid] - threads_before.get(tid, 0.0) for tid in new) / wall_s
    await api.data("PUT", f"/{api.app_id}/recordings/{rid}", json={"action": "stop"})
    done, _ = await api.until(rid, {"UPLOADED", "ERRORED"}, POLL_S)
    return Row(f"{media_kind} layer", server_cores, bot_cores, await check_files(done, work), worker_cores)


def probe(path: Path, content: bytes) -> tuple[str, float]:
    """Write a downloaded file, read its codec and duration with ffprobe, and delete it."""
    path.write_bytes(content)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path.unlink()
    info = json.loads(out)
    return info["streams"][0]["codec_name"], float(info["format"]["duration"])


async def check_files(done: dict[str, Any], work: Path) -> str:
    """A line saying what the recording wrote: files per kind, and how far their durations stray from the span."""
    if done["status"] != "UPLOADED":
        return f"recording ended {done['status']}"
    span_s = (parse_iso8601(done["stopped_time"]) - parse_iso8601(done["started_time"])).total_seconds()
    kinds: dict[str, list[float]] = {}
    async with httpx.AsyncClient(timeout=60) as client:
        for name, item in done["download_url"][0]["download_urls"].items():
            content = (await client.get(item["download_url"])).content
            codec, duration_s = await asyncio.to_thread(probe, work / name, content)
            kinds.setdefault(codec, []).append(duration_s - span_s)
    parts = [f"{len(v)} {k} (duration − span: {min(v):+.2f}…{max(v):+.2f} s)" for k, v in sorted(kinds.items())]
    return ", ".join(parts) + f"; {done['file_size'] / 1e6:.1f} MB over {span_s:.1f} s"


async def run(seconds: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="track-cost-") as folder:
        work = Path(folder)
        with bench_server(work / "data") as served:
            api = Api(served)
            app_id = await api.new_app("Track bench")
            meeting_id = (await api.data("POST", f"/{app_id}/meetings", json={"title": "Track bench"}))["id"]
            tokens = []
            for index in range(PARTICIPANTS):
                body = {
                    "custom_participant_id": f"bot-{index}",
                    "preset_name": "group_call_host",
                    "name": f"Bot {index}",
                }
                participant = await api.data("POST", f"/{app_id}/meetings/{meeting_id}/participants", json=body)
                tokens.append(participant["token"])
            command = [sys.executable, "-m", "bench.track_cost", "bots", served.base_url, meeting_id, *tokens]
            with running(command, work / "bots.log") as bots:
                await _wait_for_line(work / "bots.log", "joined", bots)
                await asyncio.sleep(SETTLE_S)
                pids = [served.pid, bots.pid]
                # idle, audio, idle, video, idle, audio, …: every recording window has an idle one either side.
                windows: list[Row] = [Row("idle", *await cores_over(pids, seconds))]
                for _ in range(rounds):
                    for media_kind in ("audio", "video"):
                        windows.append(await record(api, meeting_id, media_kind, pids, seconds, work))
                        await asyncio.sleep(SETTLE_S)
                        windows.append(Row("idle", *await cores_over(pids, seconds)))
            problems = [line for line in served.log().splitlines() if "ERROR" in line or "Traceback" in line]
        await api.close()
    print_rows(windows, seconds, problems)


async def _wait_for_line(path: Path, word: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while word not in await asyncio.to_thread(path.read_text):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the bots did not join:\n{(await asyncio.to_thread(path.read_text))[-3000:]}")
        await asyncio.sleep(0.1)


def print_rows(windows: list[Row], seconds: float, problems: list[str]) -> None:
    print(f"Track recording cost, {PARTICIPANTS} participants (640x360@30 VP8 + Opus each), {seconds:.0f} s windows")
    print(f"{'window':<14}{'server cores':>14}{'worker':>9}{'bots cores':>12}  files")
    for row in windows:
        worker = f"{row.worker_cores:.4f}" if row.label != "idle" else ""
        print(f"{row.label:<14}{row.server_cores:>14.3f}{worker:>9}{row.bot_cores:>12.3f}  {row.files}")
    # Each recording window against the mean of the idle windows on either side of it.
    extra: dict[str, list[float]] = {"audio layer": [], "video layer": []}
    workers: dict[str, list[float]] = {"audio layer": [], "video layer": []}
    for index, row in enumerate(windows):
        if row.label != "idle":
            idle = (windows[index - 1].server_cores + windows[index + 1].server_cores) / 2
            extra[row.label].append(row.server_cores - idle)
            workers[row.label].append(row.worker_cores)
    per_audio = statistics.mean(extra["audio layer"]) / PARTICIPANTS
    per_video = statistics.mean(extra["video layer"]) / PARTICIPANTS - per_audio
    idle_cores = [row.server_cores for row in windows if row.label == "idle"]
    noise = statistics.stdev(idle_cores) if len(idle_cores) > 1 else 0.0
    verdict = "meets" if per_audio <= TARGET_AUDIO_CORES else "MISSES"
    print(f"per recorded audio track: {per_audio:+.4f} core (target ≤ {TARGET_AUDIO_CORES}: {verdict})")
    print(f"per recorded video track: {per_video:+.4f} core")
    print(
        f"idle windows: {statistics.mean(idle_cores):.3f} core, stdev {noise:.4f} "
        f"(so ±{noise / PARTICIPANTS:.4f} per track is noise)"
    )
    print(
        "the recording's own file-writing thread, per track: "
        f"audio {statistics.mean(workers['audio layer']) / PARTICIPANTS:.5f} core, "
        f"audio + video {statistics.mean(workers['video layer']) / (2 * PARTICIPANTS):.5f} core"
    )
    if problems:
        print("server log problems:", *problems[:10], sep="\n  ")


async def bots(base_url: str, meeting_id: str, tokens: list[str]) -> None:
    """The bots' process: join with pre-encoded loops on one clock, stay until SIGTERM."""
    clock = SyntheticClock()
    async with AsyncExitStack() as stack:
        for index, token in enumerate(tokens):
            audio = EncodedLoopAudioTrack(clock, beep_frequency_hz=1000 + 200 * index)
            video = EncodedLoopVideoTrack(clock, label=f"Bot {index}")
            await stack.enter_async_context(join(base_url, meeting_id, token, audio=audio, video=video))
        print("joined", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["bots"]:
        asyncio.run(bots(args[1], args[2], args[3:]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured window")
    parser.add_argument("--rounds", type=int, default=2, help="audio and video recordings, each between idles")
    options = parser.parse_args(args)
    asyncio.run(run(options.seconds, options.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
