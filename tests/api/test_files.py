"""Signed downloads served by recordkit itself (recordings.md §10.2), and the optional rate limit."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from recordkit.app import create_app
from recordkit.config import build_settings
from tests.helpers import API_TOKEN, BASE, CREDENTIALS_ENV, Api, assert_error

RID = "9a7d3e21-5c4b-4f6a-8e2d-1b0c9f8e7d6a"


def stored(api: Api, name: str, content: bytes) -> None:
    path = api.services.bucket.path(RID, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def local(url: str) -> str:
    return url.removeprefix("http://testserver")


async def test_signed_link_serves_the_file_with_ranges(api: Api) -> None:
    content = bytes(range(256)) * 40
    stored(api, "talk.mp4", content)
    url = local(api.services.bucket.signed_url(RID, "talk.mp4", int(time.time()) + 600))
    whole = await api.client.get(url)
    assert whole.status_code == 200 and whole.content == content
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["content-disposition"] == 'attachment; filename="talk.mp4"'
    part = await api.client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == content[10:20]
    head = await api.client.head(url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(content)


async def test_bad_expired_and_missing_links(api: Api) -> None:
    stored(api, "talk.mp4", b"data")
    bucket = api.services.bucket
    good = local(bucket.signed_url(RID, "talk.mp4", int(time.time()) + 600))
    tampered = good[:-1] + ("1" if good.endswith("0") else "0")
    assert_error(await api.client.get(tampered), 403, "Invalid or expired signature")
    assert_error(await api.client.get(good.split("?")[0]), 403, "Invalid or expired signature")
    expired = local(bucket.signed_url(RID, "talk.mp4", int(time.time()) - 1))
    assert_error(await api.client.get(expired), 403, "Invalid or expired signature")
    missing = local(bucket.signed_url(RID, "gone.mp4", int(time.time()) + 600))
    assert_error(await api.client.get(missing), 404, "No file found")


@pytest.mark.parametrize(
    "expires",
    ["²", "9" * 5000, "1" * 13, "-1", "+5", " 5", "5 ", "0x10", "1_000", "", "١٢٣"],
)
async def test_malformed_expires_is_refused_never_crashed_on(api: Api, expires: str) -> None:
    stored(api, "talk.mp4", b"data")
    sig = api.services.bucket.signed_url(RID, "talk.mp4", 1).rsplit("=", 1)[1]
    response = await api.client.get(f"/files/{RID}/talk.mp4", params={"expires": expires, "signature": sig})
    assert_error(response, 403, "Invalid or expired signature")


async def test_a_valid_link_spelled_with_other_digits_is_refused(api: Api) -> None:
    stored(api, "talk.mp4", b"data")
    expires_s = int(time.time()) + 600
    sig = api.services.bucket.signed_url(RID, "talk.mp4", expires_s).rsplit("=", 1)[1]
    arabic_indic = "".join(chr(0x0660 + int(digit)) for digit in str(expires_s))
    response = await api.client.get(f"/files/{RID}/talk.mp4", params={"expires": arabic_indic, "signature": sig})
    assert_error(response, 403, "Invalid or expired signature")


async def test_malformed_signature_is_refused_never_crashed_on(api: Api) -> None:
    stored(api, "talk.mp4", b"data")
    expires = str(int(time.time()) + 600)
    for signature in ("é" * 64, "g" * 64, "0" * 63, "0" * 65, ""):
        response = await api.client.get(f"/files/{RID}/talk.mp4", params={"expires": expires, "signature": signature})
        assert_error(response, 403, "Invalid or expired signature")


@pytest.mark.parametrize(
    ("recording_id", "file_name"),
    [
        (RID, "talk.mp4\n"),
        (RID + "\n", "talk.mp4"),
        (RID, ".talk.mp4"),
        (RID, "talk mp4"),
        (RID, "tälk.mp4"),
    ],
)
async def test_names_that_are_not_wholly_safe_are_refused(api: Api, recording_id: str, file_name: str) -> None:
    # A name that is only safe up to a trailing newline is a file the bucket never writes; even a link
    # signed for it and a file planted under it get the same 403 as any other link we did not make.
    folder = api.services.bucket.root / recording_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file_name).write_bytes(b"planted")
    url = api.services.bucket.signed_url(recording_id, file_name, int(time.time()) + 600)
    response = await api.client.get(local(url))
    assert_error(response, 403, "Invalid or expired signature")


async def test_rate_limit_answers_429_with_retry_after(database_url: str, tmp_path: Path) -> None:
    env = {**CREDENTIALS_ENV, "RECORDKIT_RATE_LIMIT_PER_MINUTE": "5"}
    settings, _ = build_settings(tmp_path, database_url, "http://testserver", environ=env)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answers = [await client.get(f"{BASE}/apps", headers=headers) for _ in range(6)]
        assert [r.status_code for r in answers] == [200] * 5 + [429]
        assert_error(answers[-1], 429, "Too many requests")
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert (await client.get("/healthz")).status_code == 200, "only the API routes are limited"
    await app.state.services.db.close()
