"""Where a recording's CPU goes (issue 15): the server's threads and its recorder's stages, and the browser way.

`recording_cost --breakdown` measures one 2-person recording on a fresh ``recordkit serve``, over an idle window
(the same bots, nothing recorded) and a recording window: the whole server and its event loop thread from
``/proc/<pid>/task``, and the recorder's worker thread by stage from ``recordkit_recorder_cpu_seconds_total`` on
``/metrics`` (its own CPU clock, lap by lap: `recordkit/recorder/stages.py`). Then it runs
``../shared/peer/run_peer.sh`` (Chromium on Xvfb + FFmpeg x11grab, 720p veryfast, one run) for the ratio
recordkit ÷ browser measured in the same run. No sampler: py-spy, tried first, pauses the process to sample it
and put 40 % of a recording on the receiving side, where the threads' own clocks show under 5 %.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.support import cpu_seconds, machine_busy_seconds, thread_cpu_seconds
from recordkit.recorder.stages import STAGES
from tests.support.metrics import metric

ROOT = Path(__file__).resolve().parent.parent
PEER_SCRIPT = ROOT.parent / "shared" / "peer" / "run_peer.sh"
PEER_CONFIG = "720p-veryfast"


@dataclass(frozen=True)
class Window:
    """Cores over one window: the server, its event loop thread, each recorder stage, and the rest of the machine."""

    server: float
    loop: float
    stages: dict[str, float]
    others: float


async def measure(pid: int, base_url: str, seconds: float) -> Window:
    """The server's cores over the next `seconds`, split by thread and by recorder stage."""
    async with httpx.AsyncClient(timeout=10) as client:

        async def stage_seconds() -> dict[str, float]:
            text = (await client.get(f"{base_url}/metrics")).text
            return {stage: metric(text, "recordkit_recorder_cpu_seconds_total", stage=stage) for stage in STAGES}

        stages_before = await stage_seconds()
        began, server, loop, machine = time.monotonic(), cpu_seconds(pid), _loop_seconds(pid), machine_busy_seconds()
        await asyncio.sleep(seconds)
        wall = time.monotonic() - began
        server, loop = cpu_seconds(pid) - server, _loop_seconds(pid) - loop
        machine = machine_busy_seconds() - machine
        stages_after = await stage_seconds()
    stages = {stage: (stages_after[stage] - stages_before[stage]) / wall for stage in STAGES}
    return Window(server / wall, loop / wall, stages, max(0.0, machine - server) / wall)


def _loop_seconds(pid: int) -> float:
    """The main thread's CPU: the event loop (the media plane, the API, the database calls)."""
    return thread_cpu_seconds(pid)[pid]


@dataclass(frozen=True)
class PeerRun:
    """The browser way's one run: its whole tree's cores and what the rest of the machine used meanwhile."""

    cores: float
    other_cores: float
    contaminated: bool


async def run_peer(results: Path) -> PeerRun:
    """Run the peer (720p veryfast, one run) into its own results folder, so nobody else's figures are replaced;
    its output goes to this process's stdout as it comes."""
    env = {**os.environ, "PEER_CONFIGS": PEER_CONFIG, "PEER_REPEATS": "1", "PEER_RESULTS": str(results)}
    process = await asyncio.create_subprocess_exec("bash", str(PEER_SCRIPT), env=env)
    if await process.wait() != 0:
        raise RuntimeError(f"{PEER_SCRIPT} exited {process.returncode}")
    run = json.loads((results / f"{PEER_CONFIG}-1.json").read_text())
    if "error" in run:
        raise RuntimeError(f"the peer run failed: {run['error']}")
    return PeerRun(float(run["cores"]["total"]), float(run["other_cores"]), bool(run.get("contaminated")))
