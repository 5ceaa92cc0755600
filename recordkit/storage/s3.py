"""S3 and S3-compatible targets (recordings.md §10.4): AWS, DigitalOcean Spaces, Cloudflare R2, or any
service at a configured `endpoint`, on aiobotocore.

Uploads carry S3's additional checksums: SHA-256 per request (`x-amz-checksum-sha256`, which the server
recomputes and refuses on mismatch) plus Content-MD5, and a file of `part_size` or more goes up as a multipart
upload with SHA-256 per part and the composite (SHA-256 of the parts' digests, `-N`) on completion. A `put`
then reads the object back with HeadObject and compares its size and its SHA-256 (full or composite) with
what was computed locally while reading the file once. A target that keeps no additional checksum (older
S3-compatible services) is verified by its ETag instead: the MD5 of a single PUT, the MD5 of the parts' MD5s
with `-N` for a multipart upload.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http
import logging
import re
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

from aiobotocore.session import AioSession, get_session
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from recordkit.storage.media_types import content_type
from recordkit.storage.store import StoredObject, StoreError, UploadSettings

log = logging.getLogger(__name__)

# S3's limits: every part but the last is at least 5 MiB, and an upload has at most 10,000 parts.
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
# SigV4 presigned URLs are valid for at most 7 days.
MAX_PRESIGN_S = 7 * 24 * 3600
# Region for services that sign with one but have no AWS regions (self-hosted stores take any).
DEFAULT_REGION = "us-east-1"
# A bucket name that can be a DNS label under the service's host (no dots: they break TLS wildcards).
_VIRTUAL_HOSTABLE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class S3Target:
    """Where an S3 `storage_config` points: the service URL, the SigV4 region, and the addressing style."""

    url: str
    region: str
    path_style: bool


def s3_target(config: Mapping[str, Any]) -> S3Target:
    """The endpoint and region of §10.4: the provider's public URL, or `endpoint` with path-style addressing.
    Cloudflare R2 ignores `endpoint` (§10.4 lists it as ignored for `cloudflare`)."""
    kind = config["type"]
    region = config.get("region") or ""
    endpoint = config.get("endpoint")
    bucket_is_label = _VIRTUAL_HOSTABLE.fullmatch(config["bucket"]) is not None
    if kind == "cloudflare":
        return S3Target(f"https://{config['account_id']}.r2.cloudflarestorage.com", "auto", not bucket_is_label)
    if endpoint:
        # Self-hosted services rarely have a wildcard DNS name per bucket: path-style always works.
        return S3Target(endpoint.rstrip("/"), region or DEFAULT_REGION, True)
    if kind == "aws":
        return S3Target(f"https://s3.{region}.amazonaws.com", region, not bucket_is_label)
    if kind == "digitalocean":
        return S3Target(f"https://{region}.digitaloceanspaces.com", region, not bucket_is_label)
    raise ValueError(f"not an S3 storage type: {kind}")


def describe(config: Mapping[str, Any]) -> str:
    """`aws bucket team-recordings`, or `s3 bucket b at http://host:port` with an endpoint (no userinfo, no
    query: an endpoint URL could carry credentials)."""
    bucket = config["bucket"]
    endpoint = config.get("endpoint")
    if endpoint and config["type"] != "cloudflare":
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        return f"s3 bucket {bucket} at {parts.scheme}://{netloc}{parts.path.rstrip('/')}"
    return f"{config['type']} bucket {bucket}"


@dataclass(frozen=True)
class _Part:
    data: bytes
    sha256: bytes
    md5: bytes


def _read_part(file: IO[bytes], size: int) -> _Part:
    """Read and hash one part (in a worker thread: hashlib releases the GIL on large buffers)."""
    data = file.read(size)
    return _Part(data, hashlib.sha256(data).digest(), hashlib.md5(data).digest())


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class _Expected:
    """What the target must report for the bytes sent: S3's own notation for the SHA-256 and the ETag."""

    size: int
    sha256: str
    etag: str


def _expected_single(part: _Part) -> _Expected:
    return _Expected(len(part.data), _b64(part.sha256), part.md5.hex())


def _expected_multipart(size: int, sha256s: list[bytes], md5s: list[bytes]) -> _Expected:
    count = len(sha256s)
    composite_sha = _b64(hashlib.sha256(b"".join(sha256s)).digest())
    composite_md5 = hashlib.md5(b"".join(md5s)).hexdigest()
    return _Expected(size, f"{composite_sha}-{count}", f"{composite_md5}-{count}")


def _checksum(head: Mapping[str, Any]) -> str:
    """`sha256:<base64>[-N]` when the target keeps S3's SHA-256, else `md5:<hex>[-N]` from the ETag."""
    if sha := head.get("ChecksumSHA256"):
        return f"sha256:{sha}"
    return "md5:" + str(head.get("ETag", "")).strip('"')


class S3Store:
    """A bucket on S3 or an S3-compatible service, reached with SigV4 (`access_key` = key id, `secret`)."""

    def __init__(self, config: Mapping[str, Any], settings: UploadSettings) -> None:
        self._target = s3_target(config)
        self._bucket: str = config["bucket"]
        self._access_key: str = config["access_key"]
        self._secret: str = config["secret"]
        # Smaller parts would only fail at completion (EntityTooSmall), after the whole file went up.
        self._part_size = max(settings.part_size, MIN_PART_SIZE)
        self._destination = describe(config)
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._connecting = asyncio.Lock()

    @property
    def destination(self) -> str:
        return self._destination

    async def put(self, source: Path, key: str) -> StoredObject:
        client = await self._s3()
        size = (await asyncio.to_thread(source.stat)).st_size
        # Past 10,000 parts of `part_size` (160 GB at 16 MiB) the parts grow rather than the upload fail.
        part_size = max(self._part_size, -(-size // MAX_PARTS))
        with await asyncio.to_thread(source.open, "rb") as file:
            first = await asyncio.to_thread(_read_part, file, part_size)
            if len(first.data) < part_size:
                expected = await self._put_single(client, key, first)
            else:
                expected = await self._put_multipart(client, key, file, first, part_size)
        head = await self._call(
            "HeadObject", key, client.head_object, Bucket=self._bucket, Key=key, ChecksumMode="ENABLED"
        )
        return self._verified(key, head, expected)

    async def _put_single(self, client: Any, key: str, part: _Part) -> _Expected:
        await self._call(
            "PutObject",
            key,
            client.put_object,
            Bucket=self._bucket,
            Key=key,
            Body=part.data,
            ContentType=content_type(key),
            ChecksumSHA256=_b64(part.sha256),
            ContentMD5=_b64(part.md5),
        )
        return _expected_single(part)

    async def _put_multipart(self, client: Any, key: str, file: IO[bytes], first: _Part, part_size: int) -> _Expected:
        created = await self._call(
            "CreateMultipartUpload",
            key,
            client.create_multipart_upload,
            Bucket=self._bucket,
            Key=key,
            ContentType=content_type(key),
            ChecksumAlgorithm="SHA256",
        )
        upload_id = created["UploadId"]
        parts: list[dict[str, Any]] = []
        sha256s: list[bytes] = []
        md5s: list[bytes] = []
        size = 0
        part = first
        try:
            while part.data:
                number = len(parts) + 1
                uploaded = await self._call(
                    "UploadPart",
                    key,
                    client.upload_part,
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part.data,
                    ChecksumSHA256=_b64(part.sha256),
                    ContentMD5=_b64(part.md5),
                )
                parts.append({"PartNumber": number, "ETag": uploaded["ETag"], "ChecksumSHA256": _b64(part.sha256)})
                sha256s.append(part.sha256)
                md5s.append(part.md5)
                size += len(part.data)
                part = await asyncio.to_thread(_read_part, file, part_size)
            await self._call(
                "CompleteMultipartUpload",
                key,
                client.complete_multipart_upload,
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # Parts of an abandoned upload are billed until aborted; cancellation included.
            await self._abort(client, key, upload_id)
            raise
        return _expected_multipart(size, sha256s, md5s)

    async def _abort(self, client: Any, key: str, upload_id: str) -> None:
        try:
            await client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:
            # The upload's own failure is the one to report; a lifecycle rule can sweep what stays behind.
            log.warning("%s: could not abort the multipart upload of %s: %s", self._destination, key, _kind(exc))

    def _verified(self, key: str, head: Mapping[str, Any], expected: _Expected) -> StoredObject:
        size = int(head["ContentLength"])
        if size != expected.size:
            raise StoreError(self._destination, "SizeMismatch", f"{key}: {size} bytes stored, {expected.size} sent")
        stored_sha = head.get("ChecksumSHA256")
        if stored_sha is not None and stored_sha != expected.sha256:
            raise StoreError(
                self._destination, "ChecksumMismatch", f"{key}: sha256 {stored_sha}, sent {expected.sha256}"
            )
        etag = str(head.get("ETag", "")).strip('"')
        if stored_sha is None and etag != expected.etag:
            raise StoreError(self._destination, "ChecksumMismatch", f"{key}: ETag {etag}, sent md5 {expected.etag}")
        return StoredObject(key, size, _checksum(head))

    async def stat(self, key: str) -> StoredObject | None:
        client = await self._s3()
        try:
            head = await client.head_object(Bucket=self._bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self._error("HeadObject", key, exc) from None
        except BotoCoreError as exc:
            raise self._error("HeadObject", key, exc) from None
        return StoredObject(key, int(head["ContentLength"]), _checksum(head))

    async def delete(self, key: str) -> None:
        client = await self._s3()
        # S3 answers 204 for a key that is not there.
        await self._call("DeleteObject", key, client.delete_object, Bucket=self._bucket, Key=key)

    def url(self, key: str, expires_s: int) -> str | None:
        # Signed here rather than by the client: the client's presigner is async and `url` is not, and query
        # signing is pure computation on the same addressing rule the client uses.
        lifetime_s = min(max(expires_s - int(time.time()), 1), MAX_PRESIGN_S)
        request = AWSRequest(method="GET", url=self._object_url(key))
        signer = S3SigV4QueryAuth(Credentials(self._access_key, self._secret), "s3", self._target.region, lifetime_s)
        signer.add_auth(request)
        return str(request.url)

    def _object_url(self, key: str) -> str:
        target = urlsplit(self._target.url)
        path = quote(key, safe="/~")
        if self._target.path_style:
            return f"{self._target.url}/{quote(self._bucket, safe='')}/{path}"
        return f"{target.scheme}://{self._bucket}.{target.netloc}{target.path}/{path}"

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def _s3(self) -> Any:
        """The client, created on first use."""
        async with self._connecting:
            if self._client is None:
                session = await asyncio.to_thread(_loaded_session)
                config = Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path" if self._target.path_style else "virtual"},
                    # We send the checksums ourselves; botocore would otherwise add a CRC32 it reads the body for.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    # A few quick retries of one request (a part, not the file); the upload job retries the rest.
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=120,
                )
                self._client = await self._stack.enter_async_context(
                    session.create_client(
                        "s3",
                        endpoint_url=self._target.url,
                        region_name=self._target.region,
                        aws_access_key_id=self._access_key,
                        aws_secret_access_key=self._secret,
                        config=config,
                    )
                )
            return self._client

    async def _call(self, operation: str, key: str, method: Any, **params: Any) -> Any:
        try:
            return await method(**params)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(operation, key, exc) from None

    def _error(self, operation: str, key: str, exc: BotoCoreError | ClientError) -> StoreError:
        # Not chained (`from None`): botocore's messages carry request URLs, and a service's message could echo
        # the key id; what helps — operation, code, message — is kept here with the secrets masked.
        detail = f"{operation} {key}"
        if isinstance(exc, ClientError):
            message = str(exc.response.get("Error", {}).get("Message") or "")
            if message:
                detail += f": {message}"
        for secret in (self._access_key, self._secret):
            if secret:
                detail = detail.replace(secret, "***")
        return StoreError(self._destination, _kind(exc), detail)


def _kind(exc: BotoCoreError | ClientError) -> str:
    """The S3 error code (`AccessDenied`), a status name for bodiless answers (HEAD: `Forbidden`), or the
    class of the network error underneath botocore's wrapper (`ConnectionRefusedError`)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code") or "")
        if code.isdigit():
            with contextlib.suppress(ValueError):
                return http.HTTPStatus(int(code)).phrase.replace(" ", "")
        return code or type(exc).__name__
    cause: BaseException | None = exc
    while cause is not None:
        # aiohttp's own errors are OSErrors too; the one to name is the socket's (refused, reset, DNS, TLS).
        if isinstance(cause, OSError) and not type(cause).__module__.startswith("aiohttp"):
            return type(cause).__name__
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


def _loaded_session() -> AioSession:
    """A session with the S3 model files already parsed (run in a thread: botocore reads them synchronously
    when the first client is created, ~0.1 s that would otherwise block the event loop)."""
    session = get_session()
    loader = session.get_component("data_loader")
    loader.load_service_model("s3", "service-2")
    loader.load_service_model("s3", "endpoint-rule-set-1")
    for name in ("endpoints", "partitions", "sdk-default-configuration", "_retry"):
        loader.load_data(name)
    return session
