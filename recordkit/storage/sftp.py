"""SFTP target (`storage_config.type` `sftp`, recordings.md §10.4) on asyncssh.

A file goes up under a temporary name in its final directory and is renamed over the final name only once
the server's copy is verified, so a reader never sees half a file under the final name. Only what the config
says is used: no ~/.ssh/config, known_hosts, agent, default keys or Kerberos of the machine; the private key
is imported from the config in memory and never written to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import posixpath
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import asyncssh

from recordkit.storage.store import StoredObject, StoreError, UploadSettings

log = logging.getLogger(__name__)

DEFAULT_PORT = 22
CONNECT_TIMEOUT_S = 30
REDACTED = "***"

# SFTP status errors that leave the session usable; any other failure drops the connection for a fresh one.
_SESSION_ERRORS = (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection)


class SftpStore:
    """Files in a directory of an SFTP server, over one SSH connection opened at first use."""

    def __init__(self, config: Mapping[str, Any], settings: UploadSettings) -> None:
        self._host = str(config["host"])
        self._port = int(config.get("port") or DEFAULT_PORT)
        self._username = str(config["username"])
        self._auth_method = str(config["auth_method"])
        self._password: str | None = config.get("password") or None
        self._private_key: str | None = config.get("private_key") or None
        self._host_key: str | None = config.get("host_key") or None
        path = str(config.get("path") or "")
        # object_key() trims the leading `/` of an absolute path: remember it to put keys back under `/`.
        self._absolute = path.startswith("/")
        self._part_size = settings.part_size
        host = f"[{self._host}]" if ":" in self._host else self._host
        trimmed = path.strip("/")
        # `//dir` for an absolute path, as in sftp:// URLs, so it cannot be read as one relative to the login dir.
        where = ("/" if self._absolute else "") + (f"/{trimmed}" if trimmed else "")
        self._destination = f"sftp {self._username}@{host}:{self._port}{where}"
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._connecting = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SftpStore({self._destination!r})"

    @property
    def destination(self) -> str:
        return self._destination

    async def put(self, source: Path, key: str) -> StoredObject:
        """Upload under a temporary name in blocks of `part_size`, verify size and SHA-256 of a re-read, rename."""
        remote = self._remote(key)
        directory, name = posixpath.split(remote)
        temp = posixpath.join(directory, f".{name}.{uuid.uuid4().hex}.part")
        sftp = await self._session()
        try:
            if directory:
                await sftp.makedirs(directory, exist_ok=True)
            size, local_sha256 = await self._upload(sftp, source, temp)
            await self._verify(sftp, temp, size, local_sha256)
            await self._replace(sftp, temp, remote)
            final_size = (await sftp.stat(remote)).size
        except StoreError:
            await self._discard(sftp, temp)
            raise
        except (asyncssh.Error, OSError, ValueError) as exc:
            await self._discard(sftp, temp)
            raise await self._failure(exc) from None
        if final_size != size:
            raise StoreError(self._destination, "SizeMismatch", f"{key}: {final_size} bytes after rename, not {size}")
        return StoredObject(key=key, size=size, checksum=f"sha256:{local_sha256}")

    async def stat(self, key: str, *, rehash: bool = False) -> StoredObject | None:
        """Size from a stat (checksum `size:<n>`, cheap); with `rehash`, a SHA-256 of the file read back."""
        sftp = await self._session()
        remote = self._remote(key)
        try:
            attrs = await sftp.stat(remote)
            size = attrs.size or 0
            if not rehash:
                return StoredObject(key=key, size=size, checksum=f"size:{size}")
            size, digest = await self._remote_sha256(sftp, remote)
        except asyncssh.SFTPNoSuchFile:
            return None
        except (asyncssh.Error, OSError) as exc:
            raise await self._failure(exc) from None
        return StoredObject(key=key, size=size, checksum=f"sha256:{digest}")

    async def delete(self, key: str) -> None:
        sftp = await self._session()
        try:
            await sftp.remove(self._remote(key))
        except asyncssh.SFTPNoSuchFile:
            return
        except (asyncssh.Error, OSError) as exc:
            raise await self._failure(exc) from None

    def url(self, key: str, expires_s: int) -> str | None:
        return None

    async def close(self) -> None:
        await self._drop()

    # -- connection ---------------------------------------------------------------------------------------

    async def _session(self) -> asyncssh.SFTPClient:
        async with self._connecting:
            if self._sftp is not None and self._conn is not None and not self._conn.is_closed():
                return self._sftp
            await self._drop()
            try:
                self._conn = await self._connect()
                self._sftp = await self._conn.start_sftp_client()
            except (asyncssh.Error, OSError, ValueError) as exc:
                raise await self._failure(exc) from None
            return self._sftp

    async def _connect(self) -> asyncssh.SSHClientConnection:
        known_hosts: tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]] | None = None
        if self._host_key:
            known_hosts = ([asyncssh.import_public_key(self._host_key)], [], [])
        key_auth = self._auth_method == "KEY"
        client_keys: list[asyncssh.SSHKey] | None = None
        if key_auth:
            # Decrypting a passphrase-protected key runs its KDF (bcrypt rounds): CPU work, off the loop.
            client_keys = [await asyncio.to_thread(asyncssh.import_private_key, self._private_key, self._password)]
        conn = await asyncssh.connect(
            self._host,
            port=self._port,
            username=self._username,
            # Everything explicit, so nothing of the machine's own SSH setup is read or offered.
            config=[],
            known_hosts=known_hosts,
            x509_trusted_certs=None,
            x509_trusted_cert_paths=[],
            agent_path=None,
            client_keys=client_keys,
            # With KEY, `password` is the key's passphrase and must never be offered as a login password.
            password=None if key_auth else self._password,
            public_key_auth=key_auth,
            password_auth=not key_auth,
            kbdint_auth=not key_auth,
            gss_auth=False,
            gss_kex=False,
            host_based_auth=False,
            connect_timeout=CONNECT_TIMEOUT_S,
        )
        if known_hosts is None:
            server_key = conn.get_server_host_key()
            fingerprint = server_key.get_fingerprint() if server_key else "unknown"
            log.info("%s: no host_key configured; accepted server host key %s", self._destination, fingerprint)
        return conn

    async def _drop(self) -> None:
        sftp, conn = self._sftp, self._conn
        self._sftp = self._conn = None
        if sftp is not None:
            sftp.exit()
        if conn is not None:
            conn.close()
            await conn.wait_closed()

    # -- transfer -----------------------------------------------------------------------------------------

    def _remote(self, key: str) -> str:
        return f"/{key}" if self._absolute else key

    async def _upload(self, sftp: asyncssh.SFTPClient, source: Path, temp: str) -> tuple[int, str]:
        """Write `source` to `temp` one block of `part_size` at a time (asyncssh pipelines each block's SFTP
        writes), reading and hashing the next block locally meanwhile; return its size and SHA-256."""
        digest = hashlib.sha256()
        size = 0
        local = await asyncio.to_thread(source.open, "rb")
        try:
            # Exclusive create: the name is fresh, so an existing file would mean a collision, never a retry.
            async with sftp.open(temp, "xb") as remote:
                block = await asyncio.to_thread(_read_hashed, local, digest.update, self._part_size)
                while block:
                    following = asyncio.ensure_future(
                        asyncio.to_thread(_read_hashed, local, digest.update, self._part_size)
                    )
                    try:
                        await remote.write(block, size)
                    except BaseException:
                        await asyncio.gather(following, return_exceptions=True)
                        raise
                    size += len(block)
                    block = await following
                # On the disk before the rename makes it visible, where the server offers fsync@openssh.com.
                with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                    await remote.fsync()
        finally:
            await asyncio.to_thread(local.close)
        return size, digest.hexdigest()

    async def _verify(self, sftp: asyncssh.SFTPClient, temp: str, size: int, local_sha256: str) -> None:
        stat_size = (await sftp.stat(temp)).size
        if stat_size != size:
            raise StoreError(self._destination, "SizeMismatch", f"the server holds {stat_size} bytes, not {size}")
        read_size, remote_sha256 = await self._remote_sha256(sftp, temp)
        if read_size != size or remote_sha256 != local_sha256:
            raise StoreError(self._destination, "ChecksumMismatch", "the SHA-256 read back differs from the file's")

    async def _remote_sha256(self, sftp: asyncssh.SFTPClient, remote: str) -> tuple[int, str]:
        """Read `remote` back in blocks of `part_size` and hash it: SFTP servers offer no checksum of their own."""
        digest = hashlib.sha256()
        size = 0
        async with sftp.open(remote, "rb") as handle:
            while block := await handle.read(self._part_size, size):
                # hashlib releases the GIL on large buffers: a thread keeps the loop free while it hashes.
                await asyncio.to_thread(digest.update, block)
                size += len(block)
        return size, digest.hexdigest()

    async def _replace(self, sftp: asyncssh.SFTPClient, temp: str, remote: str) -> None:
        try:
            await sftp.posix_rename(temp, remote)
        except asyncssh.SFTPOpUnsupported:
            # Plain SFTPv3 rename refuses an existing target: the final name is briefly absent, never partial.
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(remote)
            await sftp.rename(temp, remote)

    async def _discard(self, sftp: asyncssh.SFTPClient, temp: str) -> None:
        """Best effort: a failed upload's temporary file goes; a dead connection leaves it (never the final name)."""
        if self._conn is None or self._conn.is_closed():
            return
        try:
            await sftp.remove(temp)
        except (asyncssh.Error, OSError):
            pass

    async def _failure(self, exc: BaseException) -> StoreError:
        """The StoreError for a vendor or OS error, its detail scrubbed of secrets; a broken session is dropped
        so the next call reconnects."""
        if not isinstance(exc, asyncssh.SFTPError) or isinstance(exc, _SESSION_ERRORS):
            await self._drop()
        detail = str(exc)
        for secret in (self._password, self._private_key):
            if secret:
                detail = detail.replace(secret, REDACTED)
        return StoreError(self._destination, type(exc).__name__, detail[:300])


def _read_hashed(handle: IO[bytes], update: Callable[[bytes], None], size: int) -> bytes:
    """The next block of the local file, hashed as it is read, so the file is read once."""
    block = handle.read(size)
    update(block)
    return block
