"""How fast recordkit's stores upload a large file, and what it costs recordkit's CPU (issue 11, acceptance 5).

One file (500 MB by default, incompressible) goes to each real local server — SeaweedFS (S3), Azurite (Azure
Blob), fake-gcs-server (GCS) and OpenSSH sshd (SFTP), all on 127.0.0.1 — through the same `Store.put` the
upload job calls, with the default part size (16 MB), verification included (the S3 store hashes SHA-256 and
MD5, Azure MD5, GCS CRC32C and MD5, SFTP SHA-256 plus a re-read of the whole file). It prints, per target:
MB/s over the whole `put`, recordkit's CPU seconds per GB (this process, all threads: reading, hashing, the
client library) and the server's CPU seconds per GB beside it (from /proc), since on one 2-core machine the
server's work slows the client too. Loopback has no network limit: the figures are the software's own.

Run from the repository root::

    .venv/bin/python -m bench.upload_throughput              # 500 MB, about 2 minutes
    .venv/bin/python -m bench.upload_throughput --mb 100 --targets s3 sftp
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.support import cpu_seconds
from recordkit.storage.store import Store, UploadSettings
from recordkit.storage.stores import open_store
from tests.support.azurite import azurite_server
from tests.support.fake_gcs import fake_gcs
from tests.support.seaweedfs import seaweedfs_s3
from tests.support.sshd import sshd_server

MB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    config: dict[str, Any]
    server_pid: int


@contextlib.contextmanager
def s3(work: Path) -> Iterator[Target]:
    with seaweedfs_s3(work) as server:
        yield Target(server.storage_config(), server.process.pid)


@contextlib.contextmanager
def azure(work: Path) -> Iterator[Target]:
    with azurite_server() as server:
        yield Target(server.storage_config(), server.process.pid)


@contextlib.contextmanager
def gcs(work: Path) -> Iterator[Target]:
    with fake_gcs(work) as server:
        yield Target(server.storage_config(), server.process.pid)


@contextlib.contextmanager
def sftp(work: Path) -> Iterator[Target]:
    with sshd_server() as server:
        yield Target(server.storage_config(), server.process.pid)


TARGETS: dict[str, Callable[[Path], contextlib.AbstractContextManager[Target]]] = {
    "s3": s3,
    "azure": azure,
    "gcs": gcs,
    "sftp": sftp,
}


def server_cpu_s(pid: int) -> float:
    """CPU of the server and every process under it (sshd serves each connection from a child)."""
    total = cpu_seconds(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            with contextlib.suppress(OSError):
                total += server_cpu_s(int(child))
    return total


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as file:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 8 * MB))
            file.write(chunk)
            remaining -= len(chunk)


async def measure(store: Store, source: Path, server_pid: int) -> tuple[float, float, float]:
    """Seconds of the put, this process's CPU seconds and the server's, during it."""
    own_before, server_before = time.process_time(), server_cpu_s(server_pid)
    started = time.monotonic()
    await store.put(source, source.name)
    elapsed = time.monotonic() - started
    # sshd's session child exits with the connection: its CPU is read before the store closes.
    server_used = server_cpu_s(server_pid) - server_before
    return elapsed, time.process_time() - own_before, server_used


async def main(size_mb: int, names: list[str]) -> None:
    settings = UploadSettings()
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as scratch:
        work = Path(scratch)
        source = work / "recording.mp4"
        make_file(source, size_mb * MB)
        gigabytes = size_mb / 1024
        print(f"Upload of one {size_mb} MB file per target, part size {settings.part_size // MB} MB, verified")
        print(f"{'target':8} {'MB/s':>8} {'seconds':>8} {'recordkit CPU s/GB':>19} {'server CPU s/GB':>16}")
        for name in names:
            with TARGETS[name](work) as target:
                store = open_store(target.config, settings)
                try:
                    elapsed, own_cpu, server_cpu = await measure(store, source, target.server_pid)
                finally:
                    await store.close()
            print(
                f"{name:8} {size_mb / elapsed:8.1f} {elapsed:8.2f} {own_cpu / gigabytes:19.2f} "
                f"{server_cpu / gigabytes:16.2f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mb", type=int, default=500, help="size of the file (default 500)")
    parser.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    arguments = parser.parse_args()
    asyncio.run(main(arguments.mb, arguments.targets))
