"""A `Store`: somewhere a recording's finished files go (recordings.md §10.4), whatever the vendor.

One implementation per kind of target — S3 (aws, digitalocean, cloudflare R2, any S3-compatible `endpoint`),
Azure Blob, Google Cloud Storage, SFTP — each on the vendor's own library. Every `put` is verified before it
returns: the size the target reports, and the checksum it offers (S3 checksum or ETag, Azure MD5, GCS
CRC32C/MD5, SFTP size plus a re-read hash), compared with the local file's. A `put` that cannot be verified
raises `StoreError`, as does every failure: its message names the destination and the error's class, never a
secret (no key, password, connection string or signed query string).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Where the multipart / block / resumable uploads start, and the size of each part (RECORDKIT_UPLOAD_PART_MB).
DEFAULT_PART_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    """A file as the target holds it: its key (`{path}/{file_name}`), its size, and the checksum the target
    confirmed, as `<algorithm>:<value>` (e.g. `md5:9e10…`, `crc32c:AAAAAA==`, `sha256:…`)."""

    key: str
    size: int
    checksum: str


@dataclass(frozen=True)
class UploadSettings:
    """How uploads are cut: files larger than `part_size` go up in parts of that size."""

    part_size: int = DEFAULT_PART_SIZE


class StoreError(Exception):
    """An upload, stat or delete that failed. `destination` says where (`aws bucket team-recordings`), `kind`
    the error's class (`AccessDenied`, `ConnectionRefusedError`, `ChecksumMismatch` …); neither holds a secret."""

    def __init__(self, destination: str, kind: str, detail: str = "") -> None:
        super().__init__(f"{destination}: {kind}" + (f" ({detail})" if detail else ""))
        self.destination = destination
        self.kind = kind


class Store(Protocol):
    """One target, with its configuration (secrets included) bound at construction."""

    @property
    def destination(self) -> str:
        """The target in words for people and error reasons, without any secret: `sftp alice@host:22/dir`."""
        ...

    async def put(self, source: Path, key: str) -> StoredObject:
        """Upload `source` to `key` (replacing what is there), in parts when it is large; verify it; raise
        `StoreError` unless the target holds exactly these bytes."""
        ...

    async def stat(self, key: str) -> StoredObject | None:
        """What the target holds at `key`, or None."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key` (nothing when it is not there)."""
        ...

    def url(self, key: str, expires_s: int) -> str | None:
        """A link to `key` valid until `expires_s` (Unix seconds) where the target signs links, else its plain
        URL where it has one, else None (SFTP)."""
        ...

    async def close(self) -> None:
        """Release connections and clients."""
        ...


def object_key(path: str | None, file_name: str) -> str:
    """`{path}/{file_name}`, the path's leading and trailing `/` trimmed; no path means the root (§10.4)."""
    trimmed = (path or "").strip("/")
    return f"{trimmed}/{file_name}" if trimmed else file_name
