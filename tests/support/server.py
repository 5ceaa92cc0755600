"""A real `recordkit serve` in a subprocess on a free 127.0.0.1 port, for end-to-end tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT_S = 60  # generous: a benchmark may start the server while the machine is busy
STOP_TIMEOUT_S = 20  # a server stopped mid-recording finalises its files before it exits


class ServeFailed(RuntimeError):
    """`recordkit serve` exited or did not answer /healthz in time; the message carries its log."""


@dataclass(frozen=True)
class Served:
    base_url: str
    data_dir: Path
    database_url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the log, to quote in an error message."""
        return self.log()[-chars:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def recordkit_serve(
    data_dir: Path,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    *,
    log_level: str | None = None,
    command_name: str = "serve",
    args: Sequence[str] = (),
) -> Iterator[Served]:
    """Start `python -m recordkit serve` (or `command_name`: `worker`) with `args`, wait for /healthz, and stop it
    (SIGTERM) afterwards.

    The log goes next to `data_dir` (`serve-<port>.log`); `log_level` is serve's `--log-level` (default info).
    """
    port = free_port()
    command = [sys.executable, "-m", "recordkit", command_name, "--port", str(port), "--data-dir", str(data_dir), *args]
    if database_url:
        command += ["--database-url", database_url]
    if log_level:
        command += ["--log-level", log_level]
    log_path = data_dir.parent / f"serve-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    served = Served(f"http://127.0.0.1:{port}", data_dir, database_url or "", log_path, process)
    try:
        _wait_healthy(served)
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(served: Served) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise ServeFailed(f"recordkit serve exited with {served.process.returncode}:\n{served.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{served.base_url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise ServeFailed(f"recordkit serve did not answer within {READY_TIMEOUT_S} s:\n{served.log()}")
