"""Recordings sent to an Azure Blob container (recordings.md §10.4), against a real Azurite."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ResourceTypes,
    generate_account_sas,
)

from recordkit.storage.azure import AzureStore
from recordkit.storage.store import StoreError, UploadSettings, object_key
from tests.support.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite, azurite_server

PART_SIZE = 1024 * 1024
SETTINGS = UploadSettings(part_size=PART_SIZE)
KEY_NAME = object_key("/2026/03/", "weekly_sync_b3f6a2c4_1772445600000.mp4")


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    with azurite_server() as server:
        yield server


def azure_config(server: Azurite, connection_string: str | None = None) -> dict[str, Any]:
    return {
        "type": "azure",
        "access_key": connection_string or server.connection_string,
        "secret": "",
        "region": "",
        "bucket": server.container,
        "path": "/2026/03/",
    }


@pytest.fixture
async def store(azurite: Azurite) -> AsyncIterator[AzureStore]:
    store = AzureStore(azure_config(azurite), SETTINGS)
    yield store
    await store.close()


def random_file(directory: Path, size: int) -> Path:
    path = directory / f"recording-{size}.mp4"
    path.write_bytes(os.urandom(size))
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def download(server: Azurite, key: str) -> bytes:
    """The blob's bytes as another client reads them."""

    def read() -> bytes:
        with BlobServiceClient.from_connection_string(server.connection_string) as client:
            return client.get_blob_client(server.container, key).download_blob().readall()

    return await asyncio.to_thread(read)


async def committed_blocks(server: Azurite, key: str) -> list[int]:
    """The sizes of the blob's committed blocks (none for a blob written by one Put Blob)."""

    def blocks() -> list[int]:
        with BlobServiceClient.from_connection_string(server.connection_string) as client:
            committed, _ = client.get_blob_client(server.container, key).get_block_list("committed")
            return [block.size for block in committed]

    return await asyncio.to_thread(blocks)


def assert_no_secret(secrets: list[str], error: StoreError, store: AzureStore, logs: str) -> None:
    for text in (str(error), repr(error), "".join(traceback.format_exception(error)), repr(store), logs):
        for secret in secrets:
            assert secret not in text


def test_destination_names_the_container_and_account_only(azurite: Azurite) -> None:
    store = AzureStore(azure_config(azurite), SETTINGS)
    assert store.destination == f"azure container {azurite.container} at account {ACCOUNT_NAME}"
    assert ACCOUNT_KEY not in repr(store)


async def test_small_file_arrives_identical_in_one_request(store: AzureStore, azurite: Azurite, tmp_path: Path) -> None:
    source = random_file(tmp_path, 1_000_000)
    stored = await store.put(source, KEY_NAME)

    assert KEY_NAME == "2026/03/weekly_sync_b3f6a2c4_1772445600000.mp4"
    content = source.read_bytes()
    assert stored.key == KEY_NAME
    assert stored.size == len(content)
    assert stored.checksum == f"md5:{hashlib.md5(content).hexdigest()}"
    assert sha256(await download(azurite, KEY_NAME)) == sha256(content)
    assert await committed_blocks(azurite, KEY_NAME) == []


async def test_large_file_goes_up_in_blocks_of_part_size(store: AzureStore, azurite: Azurite, tmp_path: Path) -> None:
    source = random_file(tmp_path, 2 * PART_SIZE + 12345)
    stored = await store.put(source, KEY_NAME)

    content = source.read_bytes()
    assert await committed_blocks(azurite, KEY_NAME) == [PART_SIZE, PART_SIZE, 12345]
    assert sha256(await download(azurite, KEY_NAME)) == sha256(content)
    assert stored.size == len(content)
    assert stored.checksum == f"md5:{hashlib.md5(content).hexdigest()}"
    assert await store.stat(KEY_NAME) == stored


async def test_a_new_upload_replaces_the_blob(store: AzureStore, azurite: Azurite, tmp_path: Path) -> None:
    await store.put(random_file(tmp_path, 3 * PART_SIZE + 1), KEY_NAME)
    smaller = random_file(tmp_path, PART_SIZE + 1)
    await store.put(smaller, KEY_NAME)

    assert sha256(await download(azurite, KEY_NAME)) == sha256(smaller.read_bytes())
    assert await committed_blocks(azurite, KEY_NAME) == [PART_SIZE, 1]


async def test_stat_and_delete(store: AzureStore, tmp_path: Path) -> None:
    key = object_key("2026/03", "stat-me.webm")
    assert await store.stat(key) is None
    stored = await store.put(random_file(tmp_path, 4096), key)
    assert await store.stat(key) == stored

    await store.delete(key)
    assert await store.stat(key) is None
    await store.delete(key)  # already gone: nothing to do


async def test_signed_url_reads_until_it_expires_and_resists_tampering(store: AzureStore, tmp_path: Path) -> None:
    source = random_file(tmp_path, 50_000)
    await store.put(source, KEY_NAME)
    url = store.url(KEY_NAME, int(time.time()) + 3600)
    assert url is not None
    expired = store.url(KEY_NAME, int(time.time()) - 60)
    assert expired is not None
    signature = url.rsplit("sig=", 1)[1].split("&", 1)[0]
    tampered = url.replace(f"sig={signature}", f"sig={'A' if signature[0] != 'A' else 'B'}{signature[1:]}")

    async with httpx.AsyncClient() as client:
        answer = await client.get(url)
        assert answer.status_code == 200
        assert answer.content == source.read_bytes()
        assert (await client.get(tampered)).status_code == 403
        assert (await client.get(expired)).status_code == 403
        # Read-only: the link cannot overwrite the recording.
        written = await client.put(url, content=b"x", headers={"x-ms-blob-type": "BlockBlob"})
        assert written.status_code == 403
    assert await store.stat(KEY_NAME) is not None


async def test_wrong_account_key_is_refused_without_leaking_it(
    azurite: Azurite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_key = base64.b64encode(b"not the account key, 64 bytes long, for an HMAC-SHA256 signer..").decode()
    connection_string = azurite.connection_string_with(wrong_key)
    store = AzureStore(azure_config(azurite, connection_string), SETTINGS)
    try:
        with pytest.raises(StoreError) as put_failed:
            await store.put(random_file(tmp_path, PART_SIZE + 1), KEY_NAME)
        with pytest.raises(StoreError) as stat_failed:
            await store.stat(KEY_NAME)
    finally:
        await store.close()

    # Azurite's code for a refused key (Azure itself answers AuthenticationFailed).
    assert put_failed.value.kind == "AuthorizationFailure"
    assert stat_failed.value.kind == "AuthorizationFailure"
    assert put_failed.value.destination == store.destination
    for error in (put_failed.value, stat_failed.value):
        assert_no_secret([wrong_key, connection_string], error, store, caplog.text)


async def test_sas_connection_string_uploads_and_never_shows_its_signature(
    azurite: Azurite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    expiry = datetime.now(UTC) + timedelta(hours=1)

    def sas_store(permission: AccountSasPermissions) -> tuple[AzureStore, str]:
        sas = generate_account_sas(
            ACCOUNT_NAME, ACCOUNT_KEY, ResourceTypes(object=True), permission=permission, expiry=expiry
        )
        connection_string = f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas}"
        return AzureStore(azure_config(azurite, connection_string), SETTINGS), sas

    writer, _ = sas_store(AccountSasPermissions(read=True, write=True, delete=True))
    reader, read_sas = sas_store(AccountSasPermissions(read=True))
    source = random_file(tmp_path, PART_SIZE + 7)
    try:
        stored = await writer.put(source, KEY_NAME)
        with pytest.raises(StoreError) as refused:
            await reader.put(source, KEY_NAME)
        # Without the account key no link can be signed: the plain URL, which reveals nothing.
        plain = reader.url(KEY_NAME, int(time.time()) + 3600)
    finally:
        await writer.close()
        await reader.close()

    assert stored.size == PART_SIZE + 7
    assert refused.value.kind == "AuthorizationPermissionMismatch"
    assert plain == f"{azurite.blob_endpoint}/{azurite.container}/{KEY_NAME}"
    assert reader.destination == f"azure container {azurite.container} at account 127.0.0.1:{azurite.port}"
    signature = read_sas.rsplit("sig=", 1)[1].split("&", 1)[0]
    assert_no_secret([read_sas, signature], refused.value, reader, caplog.text)


async def test_malformed_connection_string_is_a_store_error(azurite: Azurite, tmp_path: Path) -> None:
    secret = "AccountKey-without-a-name-" + "s" * 20
    store = AzureStore(azure_config(azurite, secret), SETTINGS)
    with pytest.raises(StoreError) as failed:
        await store.put(random_file(tmp_path, 10), KEY_NAME)
    await store.close()
    assert failed.value.kind == "InvalidConnectionString"
    assert_no_secret([secret], failed.value, store, "")


async def test_account_key_that_is_not_base64_is_a_store_error(azurite: Azurite, tmp_path: Path) -> None:
    secret = "not-base64-" + "k" * 21
    store = AzureStore(azure_config(azurite, azurite.connection_string_with(secret)), SETTINGS)
    try:
        with pytest.raises(StoreError) as put_failed:
            await store.put(random_file(tmp_path, 10), KEY_NAME)
        with pytest.raises(StoreError) as url_failed:
            store.url(KEY_NAME, int(time.time()) + 3600)
    finally:
        await store.close()
    assert put_failed.value.kind == "AzureSigningError"
    assert url_failed.value.kind == "InvalidAccountKey"
    for error in (put_failed.value, url_failed.value):
        assert_no_secret([secret], error, store, "")


async def test_stopped_server_is_a_connection_error(tmp_path: Path) -> None:
    source = random_file(tmp_path, 2048)
    with azurite_server() as server:
        store = AzureStore(azure_config(server), SETTINGS)
        await store.put(source, KEY_NAME)
    try:
        with pytest.raises(StoreError) as failed:
            await store.put(source, KEY_NAME)
    finally:
        await store.close()
    assert failed.value.kind == "ConnectionRefusedError"
    assert failed.value.destination == store.destination


async def test_requests_are_not_logged_at_info(
    store: AzureStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await store.put(random_file(tmp_path, PART_SIZE + 1), KEY_NAME)
    # azure-core would log each request's URL and headers at INFO: per-request detail, kept for DEBUG.
    assert [record for record in caplog.records if record.name.startswith("azure")] == []
