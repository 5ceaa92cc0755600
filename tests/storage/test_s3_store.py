"""The S3 store against a real SigV4-checking server (SeaweedFS), plus the pure endpoint rules."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from recordkit.storage.s3 import S3Store, S3Target, _expected_multipart, _expected_single, _Part, describe, s3_target
from recordkit.storage.store import StoreError, UploadSettings, object_key
from tests.support.seaweedfs import SeaweedS3, seaweedfs_s3, stop

PART = 5 * 1024 * 1024  # S3's smallest part
SETTINGS = UploadSettings(part_size=PART)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with seaweedfs_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server


def config_for(server: SeaweedS3, **changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "type": "aws",
        "access_key": server.access_key,
        "secret": server.secret,
        "bucket": server.bucket,
        "region": server.region,
        "endpoint": server.endpoint,
        "path": "/2026/03/",
    }
    return {**config, **changes}


@pytest.fixture
async def store(s3: SeaweedS3) -> AsyncIterator[S3Store]:
    opened = S3Store(config_for(s3), SETTINGS)
    yield opened
    await opened.close()


def random_file(directory: Path, name: str, size: int) -> Path:
    path = directory / name
    path.write_bytes(os.urandom(size))
    return path


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def downloaded(server: SeaweedS3, key: str) -> bytes:
    """The object as a client independent of the store sees it."""
    return server.client().get_object(Bucket=server.bucket, Key=key)["Body"].read()


# -- endpoint rules, no server --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "target"),
    [
        (
            {"type": "aws", "bucket": "team-recordings", "region": "eu-west-1"},
            S3Target("https://s3.eu-west-1.amazonaws.com", "eu-west-1", False),
        ),
        (
            {"type": "aws", "bucket": "team.recordings", "region": "us-east-2"},
            S3Target("https://s3.us-east-2.amazonaws.com", "us-east-2", True),
        ),
        (
            {"type": "digitalocean", "bucket": "space", "region": "sgp1"},
            S3Target("https://sgp1.digitaloceanspaces.com", "sgp1", False),
        ),
        (
            {"type": "cloudflare", "bucket": "rec", "account_id": "0123abcd"},
            S3Target("https://0123abcd.r2.cloudflarestorage.com", "auto", False),
        ),
        (
            {"type": "cloudflare", "bucket": "rec", "account_id": "0123abcd", "endpoint": "http://minio:9000"},
            S3Target("https://0123abcd.r2.cloudflarestorage.com", "auto", False),
        ),
        (
            {"type": "aws", "bucket": "b", "region": "eu-west-1", "endpoint": "http://127.0.0.1:9000/"},
            S3Target("http://127.0.0.1:9000", "eu-west-1", True),
        ),
        (
            {"type": "digitalocean", "bucket": "space", "region": "", "endpoint": "https://minio.example.org/s3"},
            S3Target("https://minio.example.org/s3", "us-east-1", True),
        ),
    ],
)
def test_endpoint_and_region_follow_the_provider(config: dict[str, Any], target: S3Target) -> None:
    assert s3_target(config) == target


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"type": "aws", "bucket": "team-recordings", "region": "eu-west-1"}, "aws bucket team-recordings"),
        ({"type": "cloudflare", "bucket": "rec", "account_id": "acc"}, "cloudflare bucket rec"),
        (
            {"type": "aws", "bucket": "b", "region": "x", "endpoint": "http://127.0.0.1:9000"},
            "s3 bucket b at http://127.0.0.1:9000",
        ),
        (
            {"type": "aws", "bucket": "b", "region": "x", "endpoint": "https://user:pw@minio.example.org/s3/?t=tok"},
            "s3 bucket b at https://minio.example.org/s3",
        ),
    ],
)
def test_destination_names_the_bucket_without_credentials(config: dict[str, Any], words: str) -> None:
    assert describe(config) == words


def test_links_to_aws_are_virtual_hosted_and_signed_for_their_region() -> None:
    store = S3Store(
        {"type": "aws", "bucket": "team-recordings", "region": "eu-west-1", "access_key": "AKIDX", "secret": "s"},
        SETTINGS,
    )
    link = urlsplit(store.url("2026/03/a b.mp4", int(time.time()) + 3600))
    query = parse_qs(link.query)
    assert (link.scheme, link.netloc, link.path) == (
        "https",
        "team-recordings.s3.eu-west-1.amazonaws.com",
        "/2026/03/a%20b.mp4",
    )
    assert query["X-Amz-Credential"][0].endswith("/eu-west-1/s3/aws4_request")
    assert 3598 <= int(query["X-Amz-Expires"][0]) <= 3600


def test_verification_refuses_a_different_size_or_checksum() -> None:
    store = S3Store({"type": "aws", "bucket": "b", "region": "r", "access_key": "a", "secret": "s"}, SETTINGS)
    data = b"recording"
    part = _Part(data, hashlib.sha256(data).digest(), hashlib.md5(data).digest())
    single = _expected_single(part)
    sha = base64.b64encode(part.sha256).decode()
    good = {"ContentLength": len(data), "ChecksumSHA256": sha, "ETag": f'"{part.md5.hex()}"'}
    assert store._verified("k", good, single).checksum == f"sha256:{sha}"
    # A target without additional checksums is held to its ETag: the MD5, or the MD5 of MD5s with -N.
    assert store._verified("k", {"ContentLength": 9, "ETag": f'"{part.md5.hex()}"'}, single).checksum.startswith("md5:")
    two = _expected_multipart(18, [part.sha256] * 2, [part.md5] * 2)
    etag_two = hashlib.md5(part.md5 * 2).hexdigest() + "-2"
    assert store._verified("k", {"ContentLength": 18, "ETag": f'"{etag_two}"'}, two).checksum == f"md5:{etag_two}"
    for head, kind in [
        ({**good, "ContentLength": 8}, "SizeMismatch"),
        ({**good, "ChecksumSHA256": base64.b64encode(bytes(32)).decode()}, "ChecksumMismatch"),
        ({"ContentLength": 9, "ETag": '"00000000000000000000000000000000"'}, "ChecksumMismatch"),
    ]:
        with pytest.raises(StoreError) as caught:
            store._verified("k", head, single)
        assert caught.value.kind == kind


# -- against SeaweedFS ----------------------------------------------------------------------------------


async def test_small_file_arrives_byte_identical_under_the_trimmed_path(
    s3: SeaweedS3, store: S3Store, tmp_path: Path
) -> None:
    source = random_file(tmp_path, "small.mp4", 1_000_003)
    key = object_key("/2026/03/", "small.mp4")
    stored = await store.put(source, key)
    data = source.read_bytes()
    assert (stored.key, stored.size) == ("2026/03/small.mp4", len(data))
    assert stored.checksum == "sha256:" + base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert sha256_of(downloaded(s3, "2026/03/small.mp4")) == sha256_of(data)


async def test_large_file_goes_up_in_parts_and_arrives_byte_identical(
    s3: SeaweedS3, store: S3Store, tmp_path: Path
) -> None:
    source = random_file(tmp_path, "large.mp4", 2 * PART + 123_457)
    data = source.read_bytes()
    stored = await store.put(source, "2026/03/large.mp4")
    chunks = [data[:PART], data[PART : 2 * PART], data[2 * PART :]]
    composite = hashlib.sha256(b"".join(hashlib.sha256(chunk).digest() for chunk in chunks)).digest()
    assert stored.size == len(data)
    assert stored.checksum == f"sha256:{base64.b64encode(composite).decode()}-3"
    client = s3.client()
    head = client.head_object(Bucket=s3.bucket, Key="2026/03/large.mp4")
    assert head["ETag"].strip('"').endswith("-3")
    attributes = client.get_object_attributes(
        Bucket=s3.bucket, Key="2026/03/large.mp4", ObjectAttributes=["ObjectParts"]
    )
    assert [p["Size"] for p in attributes["ObjectParts"]["Parts"]] == [PART, PART, 123_457]
    assert client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert sha256_of(downloaded(s3, "2026/03/large.mp4")) == sha256_of(data)


async def test_a_file_of_exactly_one_part_size_is_a_multipart_upload(
    s3: SeaweedS3, store: S3Store, tmp_path: Path
) -> None:
    source = random_file(tmp_path, "edge.mp4", PART)
    stored = await store.put(source, "edge.mp4")
    assert stored.checksum.endswith("-1")
    assert sha256_of(downloaded(s3, "edge.mp4")) == sha256_of(source.read_bytes())


async def test_a_cancelled_multipart_upload_is_aborted(s3: SeaweedS3, store: S3Store, tmp_path: Path) -> None:
    source = random_file(tmp_path, "cancelled.mp4", 12 * PART)
    client = s3.client()
    stop_watching = threading.Event()

    def wait_for_an_upload_in_progress() -> None:
        while not stop_watching.is_set() and not client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads"):
            time.sleep(0.005)

    watcher = asyncio.create_task(asyncio.to_thread(wait_for_an_upload_in_progress))
    upload = asyncio.create_task(store.put(source, "cancelled.mp4"))
    await asyncio.wait({watcher, upload}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    stop_watching.set()
    await watcher
    assert not upload.done(), "the upload finished before it could be cancelled: make the file larger"
    upload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await upload
    assert client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert await store.stat("cancelled.mp4") is None


async def test_stat_and_delete(store: S3Store, tmp_path: Path) -> None:
    source = random_file(tmp_path, "kept.mp4", 4096)
    stored = await store.put(source, "2026/03/kept.mp4")
    assert await store.stat("2026/03/kept.mp4") == stored
    assert await store.stat("2026/03/missing.mp4") is None
    await store.delete("2026/03/kept.mp4")
    assert await store.stat("2026/03/kept.mp4") is None
    await store.delete("2026/03/kept.mp4")  # already gone: not an error


async def test_signed_link_downloads_and_a_tampered_or_expired_one_is_refused(store: S3Store, tmp_path: Path) -> None:
    source = random_file(tmp_path, "linked.mp4", 70_000)
    key = "2026/03/linked é+ 1.mp4"
    await store.put(source, key)
    link = store.url(key, int(time.time()) + 600)
    assert link is not None
    short = store.url(key, int(time.time()) - 100)  # already past: the shortest link S3 signs (1 s)
    assert short is not None
    signature = parse_qs(urlsplit(link).query)["X-Amz-Signature"][0]
    tampered = link.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    async with httpx.AsyncClient() as http:
        answer = await http.get(link)
        assert answer.status_code == 200
        assert sha256_of(answer.content) == sha256_of(source.read_bytes())
        assert (await http.get(tampered)).status_code == 403
        await asyncio.sleep(2.1)
        assert (await http.get(short)).status_code == 403


@pytest.mark.parametrize(("wrong", "kind"), [("secret", "SignatureDoesNotMatch"), ("access_key", "InvalidAccessKeyId")])
async def test_wrong_credentials_fail_with_the_s3_code_and_no_secret(
    s3: SeaweedS3, tmp_path: Path, caplog: pytest.LogCaptureFixture, wrong: str, kind: str
) -> None:
    caplog.set_level(logging.DEBUG)
    bad_value = f"WRONG{secrets.token_hex(12).upper()}"
    config = config_for(s3, **{wrong: bad_value})
    store = S3Store(config, SETTINGS)
    source = random_file(tmp_path, "denied.mp4", 2 * PART)  # multipart: the first call already fails
    try:
        with pytest.raises(StoreError) as put_error:
            await store.put(source, "denied.mp4")
        with pytest.raises(StoreError) as stat_error:
            await store.stat("denied.mp4")
    finally:
        await store.close()
    assert put_error.value.kind == kind
    assert stat_error.value.kind == "Forbidden"  # HEAD answers have no body, hence no S3 code
    assert put_error.value.destination == f"s3 bucket {s3.bucket} at {s3.endpoint}"
    texts = [str(put_error.value), repr(put_error.value), str(stat_error.value), repr(stat_error.value)]
    for value in (config["secret"], config["access_key"]):
        assert not any(value in text for text in texts)
    # botocore never logs the secret key; at DEBUG it logs request headers, whose Authorization names the
    # key id, so the key id is checked in what recordkit logs and in anything at INFO or above.
    assert not any(config["secret"] in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        if record.levelno >= logging.INFO or record.name.startswith("recordkit"):
            assert config["access_key"] not in record.getMessage()


@pytest.mark.waits  # 8 s at about 0.12 cores: the client retries a closed port before it gives up
async def test_a_stopped_server_is_a_connection_error(tmp_path: Path) -> None:
    with seaweedfs_s3(tmp_path) as server:
        store = S3Store(config_for(server), SETTINGS)
        try:
            source = random_file(tmp_path, "before.mp4", 1000)
            await store.put(source, "before.mp4")  # the client is connected, its connection pooled
            stop(server)
            with pytest.raises(StoreError) as caught:
                await store.put(source, "after.mp4")
        finally:
            await store.close()
    assert caught.value.kind == "ConnectionRefusedError"
    assert server.secret not in str(caught.value) and server.access_key not in str(caught.value)
