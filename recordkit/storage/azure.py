"""Azure Blob Storage as a `Store` (storage_config type `azure`, recordings.md §10.4), on azure-storage-blob's
async client.

`access_key` is the storage account's connection string and `bucket` the container. A file up to `part_size`
goes up in one Put Blob with a Content-MD5 the service checks and keeps as the blob's MD5; a larger one in
blocks of `part_size`, each with a Content-MD5 the service checks, then a block list committed with the whole
file's MD5. Either way `put` returns only after the blob's properties (size, MD5) and, for blocks, the
committed block list (ids and sizes, in order) match what was read from the file.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import BlobSasPermissions, ContentSettings, generate_blob_sas
from azure.storage.blob.aio import BlobServiceClient, ContainerClient, LinearRetry

from recordkit.storage.media_types import content_type
from recordkit.storage.store import StoredObject, StoreError, UploadSettings

# Azure refuses a block list of more than 50,000 blocks: a file that large goes up in bigger blocks.
MAX_BLOCKS = 50_000
# Blocks sent at once: the next block is read (and hashed) while the previous ones travel.
BLOCKS_IN_FLIGHT = 2


class AzureStore:
    """One Azure Blob container, reached through the account's connection string."""

    def __init__(self, config: Mapping[str, Any], settings: UploadSettings) -> None:
        self._connection_string: str = config["access_key"]
        self._container_name: str = config["bucket"]
        self._part_size = settings.part_size
        fields = _connection_fields(self._connection_string)
        self._account_name = fields.get("ACCOUNTNAME", "")
        self._account_key = fields.get("ACCOUNTKEY", "")
        # Without an account name (a SAS-only connection string) the endpoint says which account it is; it
        # carries no secret (the signature is a field of its own).
        account = self._account_name or urlsplit(fields.get("BLOBENDPOINT", "")).netloc or "?"
        self._destination = f"azure container {self._container_name} at account {account}"
        self._service: BlobServiceClient | None = None

    def __repr__(self) -> str:
        return f"AzureStore({self._destination!r})"

    @property
    def destination(self) -> str:
        return self._destination

    async def put(self, source: Path, key: str) -> StoredObject:
        """Upload `source` to `key` in one request or in blocks, and verify what the container holds."""
        try:
            size = (await asyncio.to_thread(source.stat)).st_size
            if size <= self._part_size:
                return await self._put_single(source, key)
            return await self._put_blocks(source, key, size)
        except (AzureError, OSError) as exc:
            raise self._error(exc, "put", key) from None

    async def stat(self, key: str) -> StoredObject | None:
        try:
            properties = await self._container().get_blob_client(key).get_blob_properties()
        except HttpResponseError as exc:
            if _error_code(exc) == "BlobNotFound":
                return None
            raise self._error(exc, "stat", key) from None
        except AzureError as exc:
            raise self._error(exc, "stat", key) from None
        md5 = properties.content_settings.content_md5
        return StoredObject(key, properties.size, f"md5:{bytes(md5).hex()}" if md5 else "")

    async def delete(self, key: str) -> None:
        try:
            await self._container().get_blob_client(key).delete_blob(delete_snapshots="include")
        except HttpResponseError as exc:
            if _error_code(exc) != "BlobNotFound":
                raise self._error(exc, "delete", key) from None
        except AzureError as exc:
            raise self._error(exc, "delete", key) from None

    def url(self, key: str, expires_s: int) -> str | None:
        """A read-only SAS link when the connection string holds the account key, else the blob's plain URL."""
        # The SDK appends a SAS connection string's own signature to its URLs: drop it (the blob name is
        # percent-encoded, so the first `?` starts the query).
        plain = self._container().get_blob_client(key).url.split("?", 1)[0]
        if not (self._account_name and self._account_key):
            return plain
        try:
            sas = generate_blob_sas(
                self._account_name,
                self._container_name,
                key,
                account_key=self._account_key,
                permission=BlobSasPermissions(read=True),
                expiry=datetime.fromtimestamp(expires_s, UTC),
            )
        except ValueError:  # the key is not base64
            raise StoreError(self._destination, "InvalidAccountKey", f"url {key}") from None
        return f"{plain}?{sas}"

    async def close(self) -> None:
        if self._service is not None:
            service, self._service = self._service, None
            await service.close()

    def _container(self) -> ContainerClient:
        """The container's client, made on first use (making it does no I/O; its connections open lazily)."""
        if self._service is None:
            try:
                self._service = BlobServiceClient.from_connection_string(
                    self._connection_string,
                    # The SDK's default retries wait 15 s and more; the upload job retries the whole `put` on
                    # its own schedule, so the client only rides out a brief hiccup of one request.
                    retry_policy=LinearRetry(backoff=1, retry_total=2, random_jitter_range=0),
                    # `upload_blob` would cut a body above its own limit (64 MiB) into blocks: `put` decides.
                    max_single_put_size=self._part_size,
                    # azure-core logs every request at INFO (URL and headers, secrets redacted): that is
                    # debugging detail, not a service event.
                    http_logging_level=logging.DEBUG,
                )
            except ValueError:
                # Its message is generic, but the string is a secret: say only that it is unusable.
                raise StoreError(self._destination, "InvalidConnectionString") from None
        return self._service.get_container_client(self._container_name)

    async def _put_single(self, source: Path, key: str) -> StoredObject:
        data, md5 = await asyncio.to_thread(_read_hashed, source)
        # The body's Content-MD5 (hashed off the event loop, unlike the SDK's `validate_content`): the
        # service refuses a body that does not match it and keeps it as the blob's MD5, so the properties
        # below confirm the service's own hash.
        await (
            self._container()
            .get_blob_client(key)
            .upload_blob(
                data, overwrite=True, headers=_content_md5(md5), content_settings=ContentSettings(content_type(key))
            )
        )
        return await self._verified(key, len(data), md5)

    async def _put_blocks(self, source: Path, key: str, size: int) -> StoredObject:
        block_size = max(self._part_size, -(-size // MAX_BLOCKS))
        blob = self._container().get_blob_client(key)
        whole = hashlib.md5()
        sent: list[tuple[str, int]] = []
        slots = asyncio.Semaphore(BLOCKS_IN_FLIGHT)

        async def stage(block_id: str, chunk: bytes, chunk_md5: bytes) -> None:
            try:
                # Each block carries its own Content-MD5, which the service checks before keeping it.
                await blob.stage_block(block_id, chunk, headers=_content_md5(chunk_md5))
            finally:
                slots.release()

        def read_block(handle: BinaryIO) -> tuple[bytes, bytes]:
            chunk = handle.read(block_size)
            whole.update(chunk)
            return chunk, hashlib.md5(chunk).digest()

        with await asyncio.to_thread(source.open, "rb") as handle:
            try:
                async with asyncio.TaskGroup() as group:
                    while True:
                        await slots.acquire()
                        chunk, chunk_md5 = await asyncio.to_thread(read_block, handle)
                        if not chunk:
                            break
                        # Equal-length ids, as Azure requires within one blob; a new upload's list replaces
                        # whatever an earlier, cut-short attempt staged.
                        block_id = f"{len(sent):06d}"
                        sent.append((block_id, len(chunk)))
                        group.create_task(stage(block_id, chunk, chunk_md5))
            except ExceptionGroup as failed:
                raise failed.exceptions[0] from None
        md5 = whole.digest()
        total = sum(length for _, length in sent)
        settings = ContentSettings(content_type(key), content_md5=bytearray(md5))
        await blob.commit_block_list([block_id for block_id, _ in sent], content_settings=settings)
        committed, _ = await blob.get_block_list("committed")
        if [(block.id, block.size) for block in committed] != sent:
            raise StoreError(self._destination, "BlockListMismatch", f"put {key}")
        return await self._verified(key, total, md5)

    async def _verified(self, key: str, size: int, md5: bytes) -> StoredObject:
        """The blob at `key` as stored, if its size and MD5 are the ones read from the file."""
        stored = await self.stat(key)
        if stored is None:
            raise StoreError(self._destination, "BlobNotFound", f"put {key}: missing after upload")
        if stored.size != size:
            raise StoreError(self._destination, "SizeMismatch", f"put {key}: {stored.size} bytes, sent {size}")
        if stored.checksum != f"md5:{md5.hex()}":
            raise StoreError(self._destination, "ChecksumMismatch", f"put {key}: MD5 differs")
        return stored

    def _error(self, exc: BaseException, action: str, key: str) -> StoreError:
        """A StoreError naming the service's error code or the underlying error's class; never the vendor's
        message, which may quote a request (and so a signature)."""
        if isinstance(exc, HttpResponseError):
            return StoreError(
                self._destination,
                _error_code(exc) or type(exc).__name__,
                f"{action} {key}: HTTP {exc.status_code}",
            )
        return StoreError(self._destination, type(_root_cause(exc)).__name__, f"{action} {key}")


def _read_hashed(source: Path) -> tuple[bytes, bytes]:
    data = source.read_bytes()
    return data, hashlib.md5(data).digest()


def _content_md5(md5: bytes) -> dict[str, str]:
    """The request header with which the service checks a body (`validate_content` would hash on the loop)."""
    return {"Content-MD5": base64.b64encode(md5).decode()}


def _connection_fields(connection_string: str) -> dict[str, str]:
    """The `Name=value` fields of a connection string, names upper-cased as the SDK reads them."""
    fields = (part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    return {name.strip().upper(): value for name, value in fields}


def _error_code(exc: HttpResponseError) -> str:
    # Errors raised before any answer (an account key that is not base64 cannot sign) have no code.
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost error: `ConnectionRefusedError` rather than the SDK's `ServiceRequestError` around it."""
    seen = {id(exc)}
    while True:
        inner = getattr(exc, "inner_exception", None) or exc.__cause__ or exc.__context__
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner
