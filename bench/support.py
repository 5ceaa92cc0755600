"""What the benchmarks share: /proc readers, a `recordkit serve` subprocess and a small client of its API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import API_TOKEN, BASE, CREDENTIALS_ENV
from tests.support.server import Served, ServeFailed, recordkit_serve

CLK_TCK = os.sysconf("SC_CLK_TCK")
FINAL_STATUSES = ("UPLOADED", "ERRORED")


class BenchError(RuntimeError):
    """A request failed or the server misbehaved; the message carries the server log's tail."""


# -- /proc ----------------------------------------------------------------------------------------


def _stat_cpu_seconds(stat_path: Path) -> float:
    """utime + stime from a /proc `stat` file (split after the `)` that ends the command's name)."""
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all threads, finished ones included)."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """utime + stime of each live thread of a process, by thread id."""
    found: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # the thread ended since the listing
            found[int(tid)] = _stat_cpu_seconds(Path(f"/proc/{pid}/task/{tid}/stat"))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds every process of the machine has spent busy (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- the server -----------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_server(
    data_dir: Path,
    *,
    database_url: str | None = None,
    log_level: str = "warning",
    env: dict[str, str] | None = None,
) -> Iterator[Served]:
    """`recordkit serve` for a benchmark: the token and account `Api` uses, `log_level` (so the log holds
    only problems by default), no admission limit (the benches measure what the machine does, not what
    `RECORDKIT_MAX_RECORDINGS` lets through), and a failed start raised as a BenchError."""
    env = {**CREDENTIALS_ENV, "RECORDKIT_MAX_RECORDINGS": "1000", **(env or {})}
    with contextlib.ExitStack() as stack:
        try:
            served = stack.enter_context(recordkit_serve(data_dir, database_url, env, log_level=log_level))
        except ServeFailed as error:
            raise BenchError(str(error)) from None
        yield served


class Api:
    """Calls to one app of a benchmark's server, on one keep-alive client."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.http = httpx.AsyncClient(
            base_url=served.base_url + BASE, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=60
        )
        self.app_id = ""

    async def close(self) -> None:
        await self.http.aclose()

    async def data(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's `data`; a BenchError (with the server log's tail) unless it is 200 or 201."""
        response = await self.http.request(method, path, **kwargs)
        if response.status_code not in (200, 201):
            raise BenchError(
                f"{method} {path} answered {response.status_code}: {response.text[:500]}\n"
                f"--- server log ---\n{self.served.log_tail()}"
            )
        return response.json()["data"]

    async def new_app(self, name: str) -> str:
        """Create the app the later calls use; its id."""
        self.app_id = str((await self.data("POST", "/apps", json={"name": name}))["app"]["id"])
        return self.app_id

    async def until(
        self, recording_id: str, wanted: set[str], poll_s: float, timeout_s: float = 30
    ) -> tuple[dict[str, Any], float]:
        """GET every `poll_s` until the status is in `wanted` (or a final one); the data and time.time() seen."""
        deadline = time.monotonic() + timeout_s
        while True:
            data: dict[str, Any] = await self.data("GET", f"/{self.app_id}/recordings/{recording_id}")
            seen = time.time()
            if data["status"] in wanted or data["status"] in FINAL_STATUSES:
                return data, seen
            if time.monotonic() > deadline:
                raise BenchError(f"recording {recording_id} still {data['status']} after {timeout_s} s")
            await asyncio.sleep(poll_s)
