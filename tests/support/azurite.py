"""A real Azure Blob service for tests and benchmarks: Azurite on a free 127.0.0.1 port, in memory."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobServiceClient

from tests.support.server import free_port

AZURITE_BLOB = Path(__file__).resolve().parents[2] / ".tools" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT_NAME = "devstoreaccount1"
# Azurite's well-known development account key (public, the same in every Azurite).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10


@dataclass(frozen=True)
class Azurite:
    """A running Azurite: its blob endpoint, a connection string with the account key, and a container."""

    port: int
    blob_endpoint: str
    container: str
    process: subprocess.Popen[bytes]

    @property
    def connection_string(self) -> str:
        return self.connection_string_with(ACCOUNT_KEY)

    def storage_config(self, path: str | None = None) -> dict[str, Any]:
        """A `storage_config` (recordings.md §10.4) that uploads to this server's container."""
        config = {"type": "azure", "access_key": self.connection_string, "bucket": self.container}
        return config if path is None else {**config, "path": path}

    def connection_string_with(self, account_key: str) -> str:
        """The account's connection string with another key, to test a refused one."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={account_key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )


@contextlib.contextmanager
def azurite_server() -> Iterator[Azurite]:
    """Start `azurite-blob`, wait until it creates a container, yield it, and stop it afterwards."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="azurite-") as workdir:
        log_path = Path(workdir) / "azurite.log"
        command = [
            str(AZURITE_BLOB),
            *("--blobHost", "127.0.0.1", "--blobPort", str(port)),
            "--inMemoryPersistence",
            # Without it Azurite refuses the API version a current azure-storage-blob sends.
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ]
        with log_path.open("wb") as log_file:
            # Its working directory is the throwaway one: nothing it might write lands in the repository.
            process = subprocess.Popen(command, cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            server = Azurite(port, f"http://127.0.0.1:{port}/{ACCOUNT_NAME}", f"rec-{uuid.uuid4().hex[:8]}", process)
            _create_container(server, log_path)
            yield server
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _create_container(server: Azurite, log_path: Path) -> None:
    """Create the container, retrying until Azurite answers: an open port is not yet a ready service."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    with BlobServiceClient.from_connection_string(server.connection_string, retry_total=0) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"azurite-blob exited: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                client.create_container(server.container)
                return
            except AzureError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
