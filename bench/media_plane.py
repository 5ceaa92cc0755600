"""What forwarding costs the media plane: server CPU per forwarded stream, drops and join latency.

For 2, 4 and 8 bots in a full mesh (each publishes audio and video and receives every other's), it
starts `recordkit serve` in a subprocess, joins the bots one after another from worker processes
(`--bot-processes`, default 2: one Python event loop receiving a 8-bot mesh is itself near its limit),
and prints:

- the server's CPU as a fraction of one core (utime+stime from /proc/<pid>/stat over a steady window),
  in total and per forwarded stream (a stream = one track delivered to one subscriber), and the bots';
- frames sent by the publishers vs frames received by the subscribers in that window, per kind (the
  window starts and ends with publishing paused until nothing is in flight, so every frame counts
  once), the datagrams the kernel dropped for full receive buffers (server vs bots), and how long
  the last frames took to arrive after publishing paused (a backlog shows up here);
- for each bot that joins a room where others already publish, the time from posting its offer to
  its first remote video and audio frame.

Bots send pre-encoded 640x360 VP8 (~500 kbps, a keyframe a second, and one on request) and Opus, so
no process spends anything on encoding. Run: `.venv/bin/python -m bench.media_plane [--bots 2 4 8]
[--window 10] [--bot-processes 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.support import bench_server, cpu_seconds
from recordkit.bot.client import JoinedPeer, join
from tests.support.media import PacketLoopTrack, Setup, encode_opus, encode_vp8, honour_keyframe_requests

KINDS = ("audio", "video")


def udp_drops(pid: int) -> int:
    """Datagrams the kernel dropped at the process's UDP sockets for a full receive buffer (/proc/net/udp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return sum(
        int(fields[-1])
        for fields in (line.split() for line in Path("/proc/net/udp").read_text().splitlines()[1:])
        if fields[9] in inodes
    )


# --- worker: runs some of the bots, driven by one JSON command per stdin line ---------------------------------


class Worker:
    """The bots of one worker process."""

    def __init__(self) -> None:
        self.clips = (encode_vp8(frames=60, width=640, height=360, gop=30, bit_rate=500_000), encode_opus(frames=50))
        self.bots: list[tuple[JoinedPeer, PacketLoopTrack, PacketLoopTrack]] = []
        self.stack = contextlib.AsyncExitStack()

    async def join(self, url: str, meeting_id: str, token: str, receive: int, others_publish: bool) -> dict[str, Any]:
        audio, video = PacketLoopTrack("audio", self.clips[1]), PacketLoopTrack("video", self.clips[0])
        peer = await self.stack.enter_async_context(
            join(url, meeting_id, token, audio=audio, video=video, receive_audio=receive, receive_video=receive)
        )
        honour_keyframe_requests(peer.pc)
        self.bots.append((peer, audio, video))
        firsts: dict[str, float | None] = dict.fromkeys(KINDS)
        deadline = time.monotonic() + 10
        while others_publish and None in firsts.values() and time.monotonic() < deadline:
            for remote in peer.remote_tracks:
                first = remote.track.first_frame_s
                if first is not None and (firsts[remote.kind] is None or first < firsts[remote.kind]):  # type: ignore[operator]
                    firsts[remote.kind] = first
            await asyncio.sleep(0.005)
        return {kind: None if at is None else 1000 * (at - peer.offer_posted_s) for kind, at in firsts.items()}

    async def settle(self) -> dict[str, Any]:
        for peer, _, _ in self.bots:
            for _ in range(100):
                await peer.refresh_slots()
                if all(remote.slot is not None for remote in peer.remote_tracks):
                    break
                await asyncio.sleep(0.1)
        return {}

    def pause(self) -> dict[str, Any]:
        for _, audio, video in self.bots:
            audio.pause()
            video.pause()
        return {}

    def resume(self) -> dict[str, Any]:
        for _, audio, video in self.bots:
            audio.resume()
            video.resume()
        return {}

    async def drain(self, quiet_s: float = 0.5, limit_s: float = 15.0) -> dict[str, Any]:
        """Wait until nothing more arrives (publishing is paused everywhere); then the counts."""
        started = time.monotonic()
        last, last_change = self.received(), time.monotonic()
        while time.monotonic() - last_change < quiet_s and time.monotonic() - started < limit_s:
            await asyncio.sleep(0.05)
            if (now := self.received()) != last:
                last, last_change = now, time.monotonic()
        sent = {
            kind: sum((audio if kind == "audio" else video).sent for _, audio, video in self.bots) for kind in KINDS
        }
        return {
            "sent": sent,
            "received": last,
            "backlog_s": last_change - started,
            "cpu_s": time.process_time(),
            "drops": udp_drops(os.getpid()),
        }

    def received(self) -> dict[str, int]:
        totals = dict.fromkeys(KINDS, 0)
        for peer, _, _ in self.bots:
            for remote in peer.remote_tracks:
                totals[remote.kind] += remote.frames_received
        return totals


async def worker_main() -> None:
    worker = Worker()
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True}), flush=True)
    async with worker.stack:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            name = command.pop("cmd")
            if name == "quit":
                break
            result = getattr(worker, name)(**command)
            if asyncio.iscoroutine(result):
                result = await result
            print(json.dumps(result), flush=True)
    print(json.dumps({}), flush=True)


# --- coordinator ------------------------------------------------------------------------------------------------


class WorkerProcess:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.media_plane", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.read()

    def send(self, cmd: str, **args: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.process.stdin.flush()

    def read(self) -> Any:
        assert self.process.stdout is not None
        return json.loads(self.process.stdout.readline())

    def call(self, cmd: str, **args: Any) -> Any:
        self.send(cmd, **args)
        return self.read()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.call("quit")
        self.process.wait(20)


def on_all(workers: list[WorkerProcess], cmd: str) -> list[Any]:
    for worker in workers:
        worker.send(cmd)
    return [worker.read() for worker in workers]


def run_mesh(base_url: str, server_pid: int, setup: Setup, count: int, window_s: float, processes: int) -> None:
    app_id, meeting_id = setup.meeting(session_keep_alive_time_in_secs=0)
    workers = [WorkerProcess() for _ in range(min(processes, count))]
    try:
        joins = []
        for index in range(count):
            token = setup.participant(app_id, meeting_id, f"bot{index}")["token"]
            firsts = workers[index % len(workers)].call(
                "join", url=base_url, meeting_id=meeting_id, token=token, receive=count - 1, others_publish=index > 0
            )
            if index > 0:
                joins.append(firsts)
        on_all(workers, "settle")
        time.sleep(2)  # let keyframes and RTCP settle
        on_all(workers, "pause")
        before = on_all(workers, "drain")
        server_before, wall_before, drops_before = cpu_seconds(server_pid), time.monotonic(), udp_drops(server_pid)
        on_all(workers, "resume")
        time.sleep(window_s)
        on_all(workers, "pause")
        server_cpu, wall = cpu_seconds(server_pid) - server_before, time.monotonic() - wall_before
        server_drops = udp_drops(server_pid) - drops_before
        after = on_all(workers, "drain")
    finally:
        for worker in workers:
            worker.close()

    def total(key: str, kind: str | None = None) -> float:
        pick = (lambda r: r[key][kind]) if kind else (lambda r: r[key])
        return sum(pick(a) for a in after) - sum(pick(b) for b in before)

    streams = count * (count - 1) * 2
    core = server_cpu / wall
    print(f"\n{count} bots, full mesh: {streams} forwarded streams ({streams // 2} audio + {streams // 2} video)")
    print(f"  server CPU      {core:.3f} core total, {core / streams * 1000:.2f} millicore per forwarded stream")
    print(f"  bots' CPU       {total('cpu_s') / wall:.3f} core in {len(workers)} processes (receiving all streams)")
    for kind in ("video", "audio"):
        sent, got = int(total("sent", kind)), int(total("received", kind))
        expected = sent * (count - 1)
        missing = 1 - got / expected if expected else 0.0
        print(
            f"  {kind:5} frames    sent {sent:6d} x {count - 1} subscribers = {expected:6d} expected, "
            f"received {got:6d} ({missing:.2%} missing)"
        )
    backlog_ms = 1000 * max(a["backlog_s"] for a in after)
    print(f"  datagrams the kernel dropped (full receive buffer): server {server_drops}, bots {int(total('drops'))}")
    print(f"  after publishing paused, the last frames arrived within {backlog_ms:.0f} ms")
    video_ms = [j["video"] for j in joins if j["video"] is not None]
    audio_ms = [j["audio"] for j in joins if j["audio"] is not None]
    if video_ms and audio_ms:
        print(
            f"  offer -> first remote video frame: median {statistics.median(video_ms):.0f} ms, "
            f"max {max(video_ms):.0f} ms; audio: median {statistics.median(audio_ms):.0f} ms "
            f"(over {len(joins)} joins into a room with publishers)"
        )


def main(counts: list[int], window_s: float, processes: int) -> None:
    env = {"RECORDKIT_MEDIA_MAX_PEERS": "64"}
    # Logged at serve's default level, info, as this bench always has been: that logging is part of the cost.
    with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp) / "data", log_level="info", env=env) as served:
        setup = Setup(served.base_url)
        print(f"recordkit serve pid {served.pid}; {os.cpu_count()} cores; window {window_s:.0f} s per mesh")
        for count in counts:
            run_mesh(served.base_url, served.pid, setup, count, window_s, processes)
        setup.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--window", type=float, default=10.0, help="seconds of steady state measured per mesh")
    parser.add_argument("--bot-processes", type=int, default=2, help="worker processes the bots are spread over")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker_main())
    else:
        main(args.bots, args.window, args.bot_processes)
