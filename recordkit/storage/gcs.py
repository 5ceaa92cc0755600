"""Google Cloud Storage as a `Store` (storage_config type `gcs`, recordings.md §10.4), on google-cloud-storage's
synchronous client, whose calls run in threads.

`secret` is a service-account JSON, read in memory (never written to disk); without it (allowed only with an
`endpoint`, e.g. an emulator) requests are anonymous. `endpoint` replaces https://storage.googleapis.com through
the client's own `api_endpoint` option, never through the process-wide STORAGE_EMULATOR_HOST. `region` is not
used: a bucket's location is fixed when it is created.

A file smaller than the chunk size (`part_size` rounded up to GCS's 256 KiB unit) goes up in one request; a
larger one as a resumable upload in chunks of that size. The library sends the CRC32C it computed along with the
upload and fails on a mismatch; `put` then reads the object's metadata back and returns only when its size and
CRC32C (and MD5, when the object has one) equal what was read from the file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from time import time
from typing import Any, BinaryIO
from urllib.parse import quote

import google_crc32c
from google.api_core.exceptions import GoogleAPICallError, NotFound, RetryError, from_http_response
from google.auth.credentials import AnonymousCredentials, Credentials, Signing
from google.cloud.storage import Blob, Bucket, Client
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY
from google.oauth2 import service_account

from recordkit.storage.media_types import content_type
from recordkit.storage.store import StoredObject, StoreError, UploadSettings

DEFAULT_ENDPOINT = "https://storage.googleapis.com"
# GCS accepts resumable chunks only in multiples of 256 KiB (the last one excepted).
CHUNK_UNIT = 256 * 1024
# A V4 signed URL lives at most 7 days.
MAX_SIGNED_URL_S = 7 * 24 * 3600
# How long one call keeps retrying what the library deems transient (connection errors, 429, 5xx): a resumable
# upload retries the failed chunk instead of the upload job starting the whole file again.
DEFAULT_RETRY_TIMEOUT_S = 30.0


def chunk_size(part_size: int) -> int:
    """`part_size` rounded up to a multiple of 256 KiB, at least 256 KiB."""
    return max(1, -(-part_size // CHUNK_UNIT)) * CHUNK_UNIT


class GcsStore:
    """One GCS bucket (or a GCS-compatible service at `endpoint`)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        settings: UploadSettings,
        *,
        retry_timeout_s: float = DEFAULT_RETRY_TIMEOUT_S,
    ) -> None:
        self._bucket_name: str = config["bucket"]
        self._endpoint: str | None = (config.get("endpoint") or "").rstrip("/") or None
        self._secret: str | None = config.get("secret") or None
        self._chunk_size = chunk_size(settings.part_size)
        self._retry = DEFAULT_RETRY.with_timeout(retry_timeout_s) if retry_timeout_s > 0 else None
        self._destination = f"gcs bucket {self._bucket_name}" + (f" at {self._endpoint}" if self._endpoint else "")
        self._client: Client | None = None
        self._can_sign = False
        # Calls run in worker threads: the first ones may race to build the client.
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GcsStore({self._destination!r})"

    @property
    def destination(self) -> str:
        return self._destination

    async def put(self, source: Path, key: str) -> StoredObject:
        """Upload `source` to `key` in one request or resumable chunks, and verify what the bucket holds."""
        return await asyncio.to_thread(self._put, source, key)

    async def stat(self, key: str) -> StoredObject | None:
        return await asyncio.to_thread(self._stat, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    def url(self, key: str, expires_s: int) -> str | None:
        """A V4 signed URL (at most 7 days) with service-account credentials, else the object's plain media URL."""
        with self._translated("url", key):
            bucket = self._bucket()
            if not self._can_sign:
                quoted = quote(key, safe="")
                return (
                    f"{self._endpoint or DEFAULT_ENDPOINT}/storage/v1/b/{quote(self._bucket_name)}/o/{quoted}?alt=media"
                )
            lifetime_s = min(max(expires_s - int(time()), 1), MAX_SIGNED_URL_S)
            url: str = bucket.blob(key).generate_signed_url(
                version="v4",
                expiration=timedelta(seconds=lifetime_s),
                method="GET",
                api_access_endpoint=self._endpoint or DEFAULT_ENDPOINT,
            )
            return url

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    def _put(self, source: Path, key: str) -> StoredObject:
        with self._translated("put", key):
            blob = self._bucket().blob(key, chunk_size=self._chunk_size)
            media_type = content_type(key)
            with source.open("rb") as file:
                if source.stat().st_size < self._chunk_size:
                    sent = self._upload_whole(blob, file.read(), media_type)
                else:
                    sent = self._upload_chunks(blob, file, media_type)
            stored = self._bucket().get_blob(key, retry=self._retry)
        if stored is None:
            raise StoreError(self._destination, "NotFound", f"put {key}: missing after the upload")
        if stored.size != sent.size:
            raise StoreError(
                self._destination, "SizeMismatch", f"put {key}: {stored.size} bytes stored, {sent.size} sent"
            )
        if stored.crc32c is None and stored.md5_hash is None:
            raise StoreError(self._destination, "ChecksumMissing", f"put {key}: the object has no CRC32C or MD5")
        if stored.crc32c not in (None, sent.crc32c) or stored.md5_hash not in (None, sent.md5):
            raise StoreError(self._destination, "ChecksumMismatch", f"put {key}: the stored object differs")
        return StoredObject(key, sent.size, _checksum(stored))

    def _upload_whole(self, blob: Blob, data: bytes, content_type: str) -> _Digest:
        """One request (the library's multipart upload; above 8 MiB its resumable upload in one chunk)."""
        digest = _Digest()
        digest.update(data)
        blob.upload_from_string(data, content_type=content_type, checksum="crc32c", retry=self._retry)
        return digest

    def _upload_chunks(self, blob: Blob, file: BinaryIO, content_type: str) -> _Digest:
        """A resumable upload, each chunk read once: hashed here and sent by the library's writer."""
        digest = _Digest()
        with blob.open(
            "wb", chunk_size=self._chunk_size, content_type=content_type, checksum="crc32c", retry=self._retry
        ) as writer:
            while chunk := file.read(self._chunk_size):
                digest.update(chunk)
                writer.write(chunk)
        return digest

    def _stat(self, key: str) -> StoredObject | None:
        with self._translated("stat", key):
            blob = self._bucket().get_blob(key, retry=self._retry)
        return None if blob is None else StoredObject(key, blob.size, _checksum(blob))

    def _delete(self, key: str) -> None:
        with self._translated("delete", key), contextlib.suppress(NotFound):
            self._bucket().blob(key).delete(retry=self._retry)

    def _bucket(self) -> Bucket:
        with self._client_lock:
            if self._client is None:
                credentials = self._credentials()
                self._can_sign = isinstance(credentials, Signing)
                options = {"api_endpoint": self._endpoint} if self._endpoint else None
                # No project: recordkit never lists or creates buckets, and looking one up could reach the network.
                self._client = Client(project=None, credentials=credentials, client_options=options)
            return self._client.bucket(self._bucket_name)

    def _credentials(self) -> Credentials:
        if self._secret is None:
            return AnonymousCredentials()
        try:
            info = json.loads(self._secret)
            return service_account.Credentials.from_service_account_info(info)
        # The parser's errors hold the secret (a JSONDecodeError keeps the whole document): only the class goes
        # out, raised outside the handler so the error is not even kept as the StoreError's context.
        except Exception as exc:
            kind = type(exc).__name__
        raise StoreError(self._destination, kind, "secret is not a usable service-account JSON")

    @contextlib.contextmanager
    def _translated(self, action: str, key: str) -> Iterator[None]:
        """Turn the library's errors into StoreError, naming the error's class and never its message (the
        library's messages carry request URLs, and an upload's URL is a session anyone may write to)."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            kind, status = _kind(exc)
            detail = f"{action} {key}" + (f": HTTP {status}" if status else "")
            raise StoreError(self._destination, kind, detail) from None


class _Digest:
    """Size, CRC32C and MD5 of the bytes read, in the base64 form GCS reports them."""

    def __init__(self) -> None:
        self.size = 0
        self._crc32c = google_crc32c.Checksum()
        self._md5 = hashlib.md5()

    def update(self, data: bytes) -> None:
        self.size += len(data)
        self._crc32c.update(data)
        self._md5.update(data)

    @property
    def crc32c(self) -> str:
        return base64.b64encode(self._crc32c.digest()).decode()

    @property
    def md5(self) -> str:
        return base64.b64encode(self._md5.digest()).decode()


def _checksum(blob: Blob) -> str:
    if blob.crc32c:
        return f"crc32c:{blob.crc32c}"
    return f"md5:{blob.md5_hash}" if blob.md5_hash else ""


def _kind(exc: BaseException) -> tuple[str, int | None]:
    """The error's kind (the API error's class, or the innermost OS error: `ConnectionRefusedError`) and its
    HTTP status when the service answered."""
    if isinstance(exc, RetryError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, InvalidResponse):
        # The resumable writer raises the media layer's error; the API error says which one it is.
        exc = from_http_response(exc.response)
    if isinstance(exc, GoogleAPICallError):
        return type(exc).__name__, exc.code
    if isinstance(exc, DataCorruption):
        return "ChecksumMismatch", None
    innermost: BaseException = exc
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and type(cause).__module__ == "builtins":
            innermost = cause
        cause = cause.__cause__ or cause.__context__
    return type(innermost).__name__, None
