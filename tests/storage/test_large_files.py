"""A file over 100 MB goes up in parts of the default part size (issue 11, acceptance 3), seen by the server.

S3: the object's checksum and ETag end in `-<parts>` and the multipart upload is gone from the listing once
complete. Azure: the blob's committed block list. GCS: the chunk requests in the emulator's log. SFTP writes
blocks into one file, which only the client sees; its re-read hash is what `put` checks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from recordkit.storage.azure import AzureStore
from recordkit.storage.gcs import GcsStore
from recordkit.storage.s3 import S3Store
from recordkit.storage.store import DEFAULT_PART_SIZE, UploadSettings
from tests.support.azurite import azurite_server
from tests.support.fake_gcs import fake_gcs
from tests.support.seaweedfs import seaweedfs_s3

SIZE = 101 * 1024 * 1024 + 12345
PARTS = math.ceil(SIZE / DEFAULT_PART_SIZE)
SETTINGS = UploadSettings()  # the default part size, as in production


@pytest.fixture(scope="module")
def large_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("large") / "meeting_1796633108251.mp4"
    with path.open("wb") as file:
        block = hashlib.sha256(b"seed").digest() * (1024 * 1024 // 32)  # 1 MiB, different in every MiB below
        for index in range(SIZE // len(block) + 1):
            file.write(hashlib.sha256(index.to_bytes(4, "big")).digest() + block[32:])
    with path.open("r+b") as file:
        file.truncate(SIZE)
    yield path
    path.unlink()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def test_s3_takes_a_file_over_100_mb_in_parts(large_file: Path, tmp_path: Path) -> None:
    with seaweedfs_s3(tmp_path) as server:
        config = server.storage_config()
        store = S3Store(config, SETTINGS)
        try:
            stored = await store.put(large_file, large_file.name)
        finally:
            await store.close()
        client = server.client()
        head = client.head_object(Bucket=server.bucket, Key=large_file.name, ChecksumMode="ENABLED")
        assert head["ETag"].strip('"').endswith(f"-{PARTS}") and stored.checksum.endswith(f"-{PARTS}")
        assert head["ContentLength"] == SIZE == stored.size
        assert client.list_multipart_uploads(Bucket=server.bucket).get("Uploads", []) == []
        body = client.get_object(Bucket=server.bucket, Key=large_file.name)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha256_of(large_file)


async def test_azure_takes_a_file_over_100_mb_in_blocks(large_file: Path) -> None:
    with azurite_server() as server:
        store = AzureStore(
            {"type": "azure", "access_key": server.connection_string, "bucket": server.container}, SETTINGS
        )
        try:
            stored = await store.put(large_file, large_file.name)
        finally:
            await store.close()
        with BlobServiceClient.from_connection_string(server.connection_string) as client:
            blob = client.get_blob_client(server.container, large_file.name)
            committed, _ = blob.get_block_list("committed")
            body = blob.download_blob().readall()
    assert [block.size for block in committed][:-1] == [DEFAULT_PART_SIZE] * (PARTS - 1)
    assert sum(block.size for block in committed) == SIZE == stored.size
    assert hashlib.sha256(body).hexdigest() == sha256_of(large_file)


async def test_gcs_takes_a_file_over_100_mb_in_resumable_chunks(large_file: Path, tmp_path: Path) -> None:
    with fake_gcs(tmp_path) as server:
        store = GcsStore(server.storage_config(), SETTINGS)
        try:
            stored = await store.put(large_file, large_file.name)
        finally:
            await store.close()
        chunks = [line for line in server.requests() if line.startswith("PUT /upload/")]
    assert len(chunks) == PARTS, chunks
    assert stored.size == SIZE
