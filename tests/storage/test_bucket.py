"""Signed links of the built-in bucket (recordings.md §10.2)."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pytest

from recordkit.storage.bucket import LocalBucket, link_is_valid, signature
from recordkit.storage.media_types import content_type
from recordkit.storage.store import StoredObject, StoreError

KEY = "k" * 64
RID = "9a7d3e21-5c4b-4f6a-8e2d-1b0c9f8e7d6a"
NAME = "weekly_sync_b3f6a2c4-1e5d-4a7b-9c8d-2f3e4a5b6c7d_1772445600000.mp4"


def test_signature_is_hmac_sha256_of_path_and_expiry() -> None:
    expected = hmac.new(KEY.encode(), f"{RID}/{NAME}\n1773052209".encode(), hashlib.sha256).hexdigest()
    assert signature(KEY, RID, NAME, 1773052209) == expected


@pytest.mark.parametrize(
    ("expires", "given", "valid"),
    [
        ("2000", None, True),
        ("2000", "0" * 64, False),
        ("1000", None, False),
        ("999", None, False),
        ("", None, False),
        ("20x0", None, False),
    ],
)
def test_links_expire_and_resist_tampering(expires: str, given: str | None, valid: bool) -> None:
    sig = given if given is not None else signature(KEY, RID, NAME, int(expires) if expires.isdigit() else 0)
    assert link_is_valid(KEY, RID, NAME, expires, sig, now_s=1000.0) is valid
    assert not link_is_valid(KEY, RID, "other.mp4", expires, sig, now_s=1000.0)


@pytest.mark.parametrize(
    ("recording_id", "file_name", "expires", "given"),
    [
        (RID, NAME, "²", None),
        (RID, NAME, "２０００", None),
        (RID, NAME, "9" * 5000, None),
        (RID, NAME, "0" * 9 + "2000", None),
        (RID, NAME, "+2000", None),
        (RID, NAME, " 2000", None),
        (RID, NAME, "2000\n", None),
        (RID, NAME, "2000", "é" * 64),
        (RID, NAME + "\n", "2000", None),
        (RID + "\n", NAME, "2000", None),
    ],
)
def test_malformed_links_are_refused_without_raising(
    recording_id: str, file_name: str, expires: str, given: str | None
) -> None:
    # Signed for 2000, which `int` reads most of these `expires` as: only the malformation can refuse them.
    sig = given if given is not None else signature(KEY, recording_id, file_name, 2000)
    assert link_is_valid(KEY, recording_id, file_name, expires, sig, now_s=1000.0) is False


def test_upper_case_signatures_still_verify() -> None:
    assert link_is_valid(KEY, RID, NAME, "2000", signature(KEY, RID, NAME, 2000).upper(), now_s=1000.0)


def test_bucket_paths_and_urls(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path, KEY, "https://rec.example.org/")
    assert bucket.path(RID, NAME) == tmp_path / RID / NAME
    assert bucket.path(RID, "_prefixed_name.mp4") == tmp_path / RID / "_prefixed_name.mp4"
    for bad in ("../x", "..", ".hidden", "a/b", ""):
        assert bucket.path(RID, bad) is None
        assert bucket.path(bad, NAME) is None
    sig = signature(KEY, RID, NAME, 1773052209)
    url = bucket.signed_url(RID, NAME, 1773052209)
    assert url == f"https://rec.example.org/files/{RID}/{NAME}?expires=1773052209&signature={sig}"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.mp4", "video/mp4"),
        ("a.webm", "video/webm"),
        ("a.m4a", "audio/mp4"),
        ("a.mp3", "audio/mpeg"),
        ("a.ogg", "audio/ogg"),
        ("a.tar", "application/x-tar"),
        ("default_u_p_peer_audio_1772445905120.webm", "audio/webm"),
        ("default_u_p_peer_video_1772445905120.webm", "video/webm"),
        ("default_u_p_peer_video_1772445905120.mp4", "video/mp4"),
        ("1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f_manifest.json", "application/json"),
    ],
)
def test_content_types(name: str, expected: str) -> None:
    assert content_type(name) == expected


async def test_the_built_in_bucket_is_a_store_too(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path / "bucket", "k" * 32, "http://rk.example")
    source = tmp_path / "spool.mp4"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    stored = await bucket.put(source, "rid-1/meeting_1.mp4")
    assert stored.size == source.stat().st_size and source.exists(), "a put copies; the source stays"
    assert stored.checksum == "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
    assert (tmp_path / "bucket" / "rid-1" / "meeting_1.mp4").read_bytes() == source.read_bytes()
    assert not list((tmp_path / "bucket" / "rid-1").glob("*.part"))
    assert await bucket.stat("rid-1/meeting_1.mp4") == StoredObject("rid-1/meeting_1.mp4", stored.size,
                                                                    f"size:{stored.size}")  # fmt: skip
    url = bucket.url("rid-1/meeting_1.mp4", 2_000_000_000)
    assert url is not None and url.startswith("http://rk.example/files/rid-1/meeting_1.mp4?expires=2000000000&")
    await bucket.delete("rid-1/meeting_1.mp4")
    assert await bucket.stat("rid-1/meeting_1.mp4") is None
    with pytest.raises(StoreError):
        await bucket.put(source, "../escape.mp4")
