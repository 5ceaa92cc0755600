"""Where a recording's CPU goes (issue 15): py-spy samples of the server sorted into stages, and the browser way.

`recording_cost --breakdown` samples the ``recordkit serve`` process with py-spy while one recording runs, sorts
each on-CPU sample into a stage by the functions on its stack, then runs ``../shared/peer/run_peer.sh`` (Chromium
on Xvfb + FFmpeg x11grab, 720p veryfast, one run) for the ratio recordkit ÷ browser measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER_SCRIPT = ROOT.parent / "shared" / "peer" / "run_peer.sh"
PEER_CONFIG = "720p-veryfast"
SPY_RATE_HZ = 200
GET_PY_SPY = "python3 -m venv /tmp/spyenv && /tmp/spyenv/bin/pip install py-spy, then PY_SPY=/tmp/spyenv/bin/py-spy"

# A sample goes to the stage of the first frame, from the leaf up, that one of these matches (tried in this order
# on each frame): the leaf-most known frame says what the CPU was doing, e.g. muxing called from the video encoder.
STAGES: list[tuple[str, re.Pattern[str]]] = [
    ("muxing and writing", re.compile(r"recorder/outputs/|\b_send_(video|audio) ")),
    ("video encode", re.compile(r"\b(_encode_video|write_video) \(.*recorder/encoder\.py")),
    ("video decode", re.compile(r"aiortc/codecs/(vpx|h264)\.py")),
    (
        "audio decode + mix + encode",
        re.compile(r"aiortc/codecs/opus\.py|recorder/(mixer|speaker|encoder)\.py|\b_feed_mixer "),
    ),
    ("compose", re.compile(r"recorder/(layout|labels|watermark)\.py|\b(_update_tiles|_write_picture) ")),
    (
        "receive/tap",
        re.compile(r"aiortc/|aioice/|pylibsrtp/|recordkit/meetings/media/|recorder/inputs\.py|_SelectorDatagram"),
    ),
]
# py-spy's own idle detection counts every thread as active on this machine, so a sample whose leaf is a blocking
# wait is left out here: epoll, a condition, an idle worker or aiosqlite thread waiting on its queue (a C call, so
# the Python function is the leaf). What remains added up to within 5 % of the server's /proc CPU in a trial; when
# py-spy itself is short of CPU it misses samples.
WAITING = re.compile(
    r"^(EpollSelector\.select|Condition\.wait|Event\.wait|Thread\.join|_worker|_connection_worker_thread) "
)
REST = "rest (event loop, threads, Python)"
STAGE_NAMES = [name for name, _ in STAGES] + [REST]


def find_py_spy() -> str | None:
    """py-spy from $PY_SPY, PATH or the project's venv; None when there is none (the bench installs nothing)."""
    for candidate in (os.environ.get("PY_SPY"), shutil.which("py-spy"), str(ROOT / ".venv" / "bin" / "py-spy")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


async def py_spy_record(py_spy: str, pid: int, seconds: float, output: Path) -> None:
    """Sample `pid` for `seconds` into a raw (collapsed stacks) file. py-spy pauses the process for each sample:
    without that (--nonblocking) stacks come torn and a quarter of the CPU went unseen."""
    process = await asyncio.create_subprocess_exec(
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(SPY_RATE_HZ),
        "--format",
        "raw",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, error = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"py-spy record failed ({process.returncode}): {error.decode(errors='replace')[-400:]}")


def stage_of(frames: list[str]) -> str | None:
    """The stage of one stack, its frames root first; None when it is waiting, not on CPU."""
    if WAITING.match(frames[-1]):
        return None
    for frame in reversed(frames):
        for name, pattern in STAGES:
            if pattern.search(frame):
                return name
    return REST


def stage_samples(raw: str) -> Counter[str]:
    """Samples per stage from py-spy's raw output: one line per distinct stack, frames joined by ';', the count
    last."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        stage = stage_of(stack.split(";")) if stack and count.isdigit() else None
        if stage is not None:
            counts[stage] += int(count)
    return counts


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
