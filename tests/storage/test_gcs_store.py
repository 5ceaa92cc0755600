"""GcsStore against a real fake-gcs-server: uploads arrive intact, large ones in resumable chunks, and errors
name their kind without the service-account key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_crc32c
import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from recordkit.storage.gcs import GcsStore, chunk_size
from recordkit.storage.store import StoreError, UploadSettings, object_key
from tests.support.fake_gcs import FakeGcs, fake_gcs
from tests.support.server import free_port

KIB = 1024
CHUNK = 256 * KIB


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    with fake_gcs(tmp_path_factory.mktemp("gcs")) as server:
        yield server


def random_file(directory: Path, name: str, size: int) -> Path:
    path = directory / name
    path.write_bytes(os.urandom(size))
    return path


async def download(url: str) -> httpx.Response:
    """A GET by plain HTTP, independent of the client under test."""
    async with httpx.AsyncClient() as client:
        return await client.get(url)


def crc32c_b64(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def service_account_json(token_uri: str = "https://oauth2.googleapis.com/token") -> tuple[str, rsa.RSAPrivateKey]:
    """A realistic service-account key file around a throwaway RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "recordkit-test",
        "private_key_id": "3f1e9c0b7a6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f",
        "private_key": pem,
        "client_email": "recorder@recordkit-test.iam.gserviceaccount.com",
        "client_id": "104729385610293847561",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    return json.dumps(info), key


def assert_no_secret(error: StoreError, caplog: pytest.LogCaptureFixture, secret: str) -> None:
    """Neither the secret nor any line of the private key in it shows in the error or the logs."""
    pem_lines = [line for line in secret.split("\\n") if len(line) > 40]  # JSON escapes the PEM's newlines
    assert pem_lines  # the check below looks for something
    # A record's extra fields too: google-auth logs each request's URL, headers and body there.
    records = [str(record.__dict__) for record in caplog.records]
    for text in (str(error), repr(error), error.destination, error.kind, caplog.text, *records):
        for fragment in (secret, *pem_lines):
            assert fragment not in text


@pytest.fixture
def google_debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, also fed by google-auth's DEBUG request logs, which otherwise do not reach the root logger."""
    google = logging.getLogger("google")
    level = google.level
    google.addHandler(caplog.handler)
    google.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        google.removeHandler(caplog.handler)
        google.setLevel(level)


def store_for(gcs: FakeGcs, part_size: int = 16 * 1024 * KIB, **config: Any) -> GcsStore:
    return GcsStore(
        {"type": "gcs", "bucket": gcs.bucket, "endpoint": gcs.endpoint, **config}, UploadSettings(part_size)
    )


def upload_requests(gcs: FakeGcs, key_fragment: str) -> list[str]:
    return [line for line in gcs.requests() if line.split(" ", 1)[1].startswith("/upload/") and key_fragment in line]


@pytest.mark.parametrize(
    ("part_size", "expected"),
    [(1, CHUNK), (CHUNK, CHUNK), (CHUNK + 1, 2 * CHUNK), (300 * KIB, 2 * CHUNK), (16 * 1024 * KIB, 16 * 1024 * KIB)],
)
def test_chunks_are_whole_multiples_of_256_kib(part_size: int, expected: int) -> None:
    assert chunk_size(part_size) == expected


async def test_small_file_arrives_byte_identical_in_one_request(gcs: FakeGcs, tmp_path: Path) -> None:
    source = random_file(tmp_path, "small_rec.mp4", 1_000_000)
    key = object_key("/2026/03/", source.name)
    store = store_for(gcs)
    try:
        stored = await store.put(source, key)
    finally:
        await store.close()

    data = source.read_bytes()
    assert key == "2026/03/small_rec.mp4"
    assert (stored.key, stored.size, stored.checksum) == (key, len(data), f"crc32c:{crc32c_b64(data)}")
    downloaded = (await download(gcs.media_url(key))).content
    assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(data).hexdigest()
    uploads = upload_requests(gcs, "")
    assert any("uploadType=multipart" in line for line in uploads)
    assert not any("small_rec" in line for line in uploads)  # a resumable session would name the object


async def test_large_file_goes_up_in_resumable_chunks_of_part_size(gcs: FakeGcs, tmp_path: Path) -> None:
    source = random_file(tmp_path, "large_rec.mp4", 2 * CHUNK + 100 * KIB)
    key = object_key("/2026/03/", source.name)
    store = store_for(gcs, part_size=CHUNK)
    try:
        stored = await store.put(source, key)
    finally:
        await store.close()

    data = source.read_bytes()
    assert (stored.size, stored.checksum) == (len(data), f"crc32c:{crc32c_b64(data)}")
    downloaded = (await download(gcs.media_url("2026/03/large_rec.mp4"))).content
    assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(data).hexdigest()
    chunks = [line for line in upload_requests(gcs, "large_rec") if line.startswith("PUT ")]
    assert len(chunks) == 3, chunks


async def test_stat_url_and_delete(gcs: FakeGcs, tmp_path: Path) -> None:
    source = random_file(tmp_path, "stat_rec.webm", 300 * KIB)
    key = object_key("team/", source.name)
    store = store_for(gcs)
    try:
        assert await store.stat(key) is None
        stored = await store.put(source, key)
        assert await store.stat(key) == stored

        link = store.url(key, int(time.time()) + 3600)
        assert link is not None and link.startswith(gcs.endpoint)
        assert (await download(link)).content == source.read_bytes()

        await store.delete(key)
        assert await store.stat(key) is None
        assert (await download(gcs.media_url(key))).status_code == 404
        await store.delete(key)  # already gone: nothing to do
    finally:
        await store.close()


async def test_put_replaces_what_is_at_the_key(gcs: FakeGcs, tmp_path: Path) -> None:
    key = "replaced.mp4"
    store = store_for(gcs, part_size=CHUNK)
    try:
        first = await store.put(random_file(tmp_path, "first", 3 * CHUNK), key)  # whole chunks, then an empty one
        assert first.size == 3 * CHUNK
        second = random_file(tmp_path, "second", 100 * KIB)
        stored = await store.put(second, key)
    finally:
        await store.close()
    assert stored.size == 100 * KIB
    assert (await download(gcs.media_url(key))).content == second.read_bytes()


def test_signed_url_is_a_v4_signature_by_the_service_account_key(gcs: FakeGcs) -> None:
    secret, key = service_account_json()
    store = store_for(gcs, secret=secret)
    object_name = "2026/03/weekly sync.mp4"

    link = store.url(object_name, int(time.time()) + 3600)

    assert link is not None
    unsigned, _, signature = link.partition("&X-Goog-Signature=")
    parts = urlsplit(unsigned)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == gcs.endpoint
    assert parts.path == f"/{gcs.bucket}/2026/03/weekly%20sync.mp4"
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Credential"][0].startswith("recorder@recordkit-test.iam.gserviceaccount.com/")
    assert 3590 <= int(query["X-Goog-Expires"][0]) <= 3600
    # The canonical request of Google's V4 signing spec, rebuilt here and checked with the public key.
    canonical = "\n".join(["GET", parts.path, parts.query, f"host:{parts.netloc}\n", "host", "UNSIGNED-PAYLOAD"])
    string_to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            query["X-Goog-Date"][0],
            query["X-Goog-Credential"][0].split("/", 1)[1],
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key.public_key().verify(binascii.unhexlify(signature), string_to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())


def test_signed_url_lives_at_most_seven_days(gcs: FakeGcs) -> None:
    secret, _ = service_account_json()
    link = store_for(gcs, secret=secret).url("a.mp4", int(time.time()) + 30 * 24 * 3600)
    assert link is not None
    assert parse_qs(urlsplit(link).query)["X-Goog-Expires"] == ["604800"]


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda secret: secret[:-40], id="truncated-json"),
        pytest.param(lambda secret: secret.replace('"client_email"', '"email"'), id="no-client-email"),
        pytest.param(lambda secret: secret.replace("MII", "XXX"), id="corrupt-private-key"),
    ],
)
async def test_malformed_service_account_fails_at_first_use_without_leaking_it(
    gcs: FakeGcs, tmp_path: Path, google_debug_logs: pytest.LogCaptureFixture, mangle: Any
) -> None:
    secret = mangle(service_account_json()[0])
    store = store_for(gcs, secret=secret)
    assert secret not in repr(store) and secret not in store.destination

    with pytest.raises(StoreError) as failure:
        await store.put(random_file(tmp_path, "a.mp4", 1000), "a.mp4")

    assert "service-account" in str(failure.value)
    assert failure.value.__cause__ is None and failure.value.__context__ is None
    assert_no_secret(failure.value, google_debug_logs, secret)


async def test_token_server_down_is_a_connection_error_without_the_key(
    gcs: FakeGcs, tmp_path: Path, google_debug_logs: pytest.LogCaptureFixture
) -> None:
    secret, _ = service_account_json(token_uri=f"http://127.0.0.1:{free_port()}/token")
    store = GcsStore(
        {"type": "gcs", "bucket": gcs.bucket, "endpoint": gcs.endpoint, "secret": secret},
        UploadSettings(),
        retry_timeout_s=0,
    )
    try:
        with pytest.raises(StoreError) as failure:
            await store.put(random_file(tmp_path, "a.mp4", 1000), "a.mp4")
    finally:
        await store.close()
    assert failure.value.kind == "ConnectionRefusedError"
    assert any(record.name.startswith("google.auth") for record in google_debug_logs.records)  # the key was used
    assert_no_secret(failure.value, google_debug_logs, secret)


@pytest.mark.parametrize("part_size", [16 * 1024 * KIB, CHUNK], ids=["one-request", "resumable"])
async def test_stopped_server_is_a_connection_error(tmp_path: Path, part_size: int) -> None:
    with fake_gcs(tmp_path) as server:
        store = GcsStore(
            {"type": "gcs", "bucket": server.bucket, "endpoint": server.endpoint},
            UploadSettings(part_size),
            retry_timeout_s=0.5,  # retried, then given up: the kind is still the connection's
        )
    source = random_file(tmp_path, "a.mp4", 2 * CHUNK)
    try:
        with pytest.raises(StoreError) as put_failure:
            await store.put(source, "a.mp4")
        with pytest.raises(StoreError) as stat_failure:
            await store.stat("a.mp4")
    finally:
        await store.close()
    assert put_failure.value.kind == "ConnectionRefusedError"
    assert stat_failure.value.kind == "ConnectionRefusedError"
    assert server.endpoint in put_failure.value.destination


@pytest.mark.parametrize("part_size", [16 * 1024 * KIB, CHUNK], ids=["one-request", "resumable"])
async def test_missing_bucket_is_not_found(gcs: FakeGcs, tmp_path: Path, part_size: int) -> None:
    store = GcsStore({"type": "gcs", "bucket": "no-such-bucket", "endpoint": gcs.endpoint}, UploadSettings(part_size))
    try:
        with pytest.raises(StoreError) as failure:
            await store.put(random_file(tmp_path, "a.mp4", 2 * CHUNK), "2026/a.mp4")
    finally:
        await store.close()
    assert failure.value.kind == "NotFound"
    assert failure.value.destination == f"gcs bucket no-such-bucket at {gcs.endpoint}"
    assert "put 2026/a.mp4: HTTP 404" in str(failure.value)
