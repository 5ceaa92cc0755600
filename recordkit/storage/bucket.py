"""The built-in bucket (recordings.md §10.2): files under the data dir, served through signed links — and a
`Store` like the user's own (keys `<recording_id>/<file_name>`), so the fleet can swap it for an S3 bucket.

A link is `{public_url}/files/{recording_id}/{file_name}?expires={unix_s}&signature={hex}` where the
signature is HMAC-SHA256 with the server's URL-signing key over `"{recording_id}/{file_name}\\n{expires}"`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

from recordkit.storage.store import StoredObject, StoreError

COPY_BLOCK = 4 * 1024 * 1024

# Each is used with `fullmatch`, before anything is parsed or compared: `$` also matches before a trailing
# newline, `isdigit` passes "²" which `int` raises on, `int` raises past 4,300 digits and `compare_digest`
# on non-ASCII text, and a hostile link must get a 403, never a 500.
SAFE_NAME = re.compile(r"(?!\.)[A-Za-z0-9._-]+")
EXPIRES = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


def signature(key: str, recording_id: str, file_name: str, expires_s: int) -> str:
    """The lowercase hex HMAC of one link."""
    message = f"{recording_id}/{file_name}\n{expires_s}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def link_is_valid(key: str, recording_id: str, file_name: str, expires: str, given: str, now_s: float) -> bool:
    """Whether a link's names, `expires` and `signature` were made by us and have not run out (constant time)."""
    well_formed = (
        SAFE_NAME.fullmatch(recording_id)
        and SAFE_NAME.fullmatch(file_name)
        and EXPIRES.fullmatch(expires)
        and SIGNATURE.fullmatch(given)
    )
    if not well_formed or int(expires) <= now_s:
        return False
    expected = signature(key, recording_id, file_name, int(expires))
    return hmac.compare_digest(expected, given.lower())


class LocalBucket:
    """Files of recordings in `root/<recording_id>/<file_name>`, and links to them."""

    destination = "the built-in bucket"

    def __init__(self, root: Path, signing_key: str, public_url: str) -> None:
        self.root = root
        self._key = signing_key
        self._public_url = public_url.rstrip("/")

    def path(self, recording_id: str, file_name: str) -> Path | None:
        """Where the file lives, or None for names that could step outside the bucket."""
        if not SAFE_NAME.fullmatch(recording_id) or not SAFE_NAME.fullmatch(file_name):
            return None
        return self.root / recording_id / file_name

    def recording_ids(self) -> list[str]:
        """The recordings that have a folder in the bucket."""
        if not self.root.is_dir():
            return []
        return sorted(entry.name for entry in self.root.iterdir() if entry.is_dir() and SAFE_NAME.fullmatch(entry.name))

    def part_files(self) -> list[tuple[str, Path]]:
        """(recording id, path) of every `.part` file: the first half of a move into the bucket (upload.py)."""
        return [
            (recording_id, path)
            for recording_id in self.recording_ids()
            for path in (self.root / recording_id).glob("*.part")
        ]

    def delete_recording(self, recording_id: str) -> None:
        """Delete a recording's folder and every file in it (nothing when it is not there)."""
        if SAFE_NAME.fullmatch(recording_id):
            shutil.rmtree(self.root / recording_id, ignore_errors=True)

    def signed_url(self, recording_id: str, file_name: str, expires_s: int) -> str:
        """A download link that works until `expires_s` (Unix seconds)."""
        sig = signature(self._key, recording_id, file_name, expires_s)
        return f"{self._public_url}/files/{quote(recording_id)}/{quote(file_name)}?expires={expires_s}&signature={sig}"

    def allows(self, recording_id: str, file_name: str, expires: str, given: str, now_s: float) -> bool:
        """Whether the link's signature is ours and unexpired."""
        return link_is_valid(self._key, recording_id, file_name, expires, given, now_s)

    # --- the Store interface (keys are `<recording_id>/<file_name>`) ---------------------------------------

    async def put(self, source: Path, key: str) -> StoredObject:
        return await asyncio.to_thread(self.copy_in, source, key)

    async def stat(self, key: str) -> StoredObject | None:
        path = self._key_path(key)
        if path is None or not path.is_file():
            return None
        size = path.stat().st_size
        return StoredObject(key, size, f"size:{size}")

    async def delete(self, key: str) -> None:
        path = self._key_path(key)
        if path is not None:
            path.unlink(missing_ok=True)

    def url(self, key: str, expires_s: int) -> str | None:
        recording_id, _, file_name = key.partition("/")
        return self.signed_url(recording_id, file_name, expires_s) if self._key_path(key) is not None else None

    async def close(self) -> None:
        return None

    def copy_in(self, source: Path, key: str) -> StoredObject:
        """Copy `source` to `key` through `<name>.part`, hashing what is read and re-reading what was written,
        then rename it into place: a reader never sees half a file, and a short or changed copy raises."""
        target = self._key_path(key)
        if target is None:
            raise StoreError(self.destination, "InvalidKey", key)
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        read = hashlib.sha256()
        with source.open("rb") as file, part.open("wb") as copy:
            while block := file.read(COPY_BLOCK):
                read.update(block)
                copy.write(block)
            copy.flush()
            os.fsync(copy.fileno())
        written = _sha256(part)
        if written != read.hexdigest():
            part.unlink(missing_ok=True)
            raise StoreError(self.destination, "ChecksumMismatch", key)
        os.replace(part, target)
        return StoredObject(key, target.stat().st_size, f"sha256:{written}")

    def _key_path(self, key: str) -> Path | None:
        recording_id, _, file_name = key.partition("/")
        return self.path(recording_id, file_name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()
