"""Does everyone see everyone? Rounds of two headless Chromium pages and a bot joining one meeting.

Issue 10, acceptance 7. Each round makes a fresh meeting on one `recordkit serve` (SQLite, log level
`warning`), and the two join pages and the bot (`recordkit.bot`, test-pattern video) join it at once, as
a new user would try it (`tests/support/browser.py`, shared with tests/e2e/test_join_reliability.py).
Each page is timed from the moment the last of the three is connected until its stats show decoded
video from both others ("join -> all remotes", polled every 50 ms). A page that needs more than
`--within` seconds (3 by default) fails its round; one that has not decoded every remote video after
`--patience` seconds is printed with what it did receive, per section.

It prints one line per round, then the rounds that failed and the join -> all remotes time over every
page of every round (p50, p99, max). About 3 minutes for 50 rounds: `.venv/bin/python -m
bench.join_reliability [--rounds 50] [--within 3] [--patience 10]`; wrap it in `flock /tmp/rk-bench.lock`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import tempfile
from pathlib import Path

from bench.support import bench_server
from tests.support.browser import CHROMIUM, chromium, join_round


def nearest_rank(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `fraction` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def main(rounds: int, within_s: float, patience_s: float) -> None:
    times_s: list[float] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp) / "data") as served:
        print(f"recordkit serve pid {served.pid}; {os.cpu_count()} cores; {CHROMIUM}")
        async with chromium(Path(tmp) / "chromium-profile") as browser:
            for number in range(1, rounds + 1):
                result = await join_round(browser, served.base_url, patience_s=patience_s)
                times_s += [page.all_remotes_s for page in result.pages if page.all_remotes_s is not None]
                worst_s = result.worst_s
                verdict = "ok" if worst_s is not None and worst_s <= within_s else "FAILED"
                print(f"round {number:3d}: {verdict:6} {result.describe()}", flush=True)
                if verdict != "ok":
                    failed.append(f"round {number}: {result.describe()}")
    pages = 2 * rounds
    print(
        f"\n{rounds} rounds ({pages} pages): {len(failed)} failed, i.e. a page did not decode every remote video"
        f" within {within_s:g} s of everyone being connected"
    )
    for line in failed:
        print(f"  {line}")
    if times_s:
        print(
            f"join -> all remotes over {len(times_s)} pages: p50 {statistics.median(times_s):.2f} s, "
            f"p99 {nearest_rank(times_s, 0.99):.2f} s, max {max(times_s):.2f} s"
        )
    if len(times_s) < pages:
        print(f"{pages - len(times_s)} pages never decoded every remote video within {patience_s:g} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--within", type=float, default=3.0, help="seconds a page may take to see everyone")
    parser.add_argument("--patience", type=float, default=10.0, help="seconds to wait before giving a page up")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.within, args.patience))
