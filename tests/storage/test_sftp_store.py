"""The SFTP store against a real OpenSSH server (tests/support/sshd.py); files are checked on the local disk."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from recordkit.storage.sftp import SftpStore
from recordkit.storage.store import StoreError, UploadSettings, object_key
from tests.support.sshd import PasswordUser, Sshd, password_user, sshd_server

PART = 64 * 1024  # small blocks so a file of a few hundred KB crosses several of them
NAME = "weekly_sync_b3f6a2c4_1772445600000.mp4"


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    with sshd_server() as server:
        yield server


@pytest.fixture(scope="module")
def account(sshd: Sshd) -> Iterator[PasswordUser]:
    if os.geteuid() != 0:
        pytest.skip("password auth needs a throwaway OS user, and only root can create one")
    with password_user(sshd) as user:
        yield user


def key_config(server: Sshd, **fields: Any) -> dict[str, Any]:
    config = {
        "type": "sftp",
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "auth_method": "KEY",
        "private_key": server.private_key,
        "host_key": server.host_key,
        "path": f"recordings-{secrets.token_hex(4)}",
    }
    config.update(fields)
    return config


def random_file(directory: Path, size: int) -> Path:
    path = directory / f"spool-{size}.mp4"
    path.write_bytes(os.urandom(size))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.asynccontextmanager
async def opened(config: dict[str, Any], part_size: int = PART) -> AsyncIterator[SftpStore]:
    store = SftpStore(config, UploadSettings(part_size=part_size))
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize(("size", "part_size"), [(1_000_003, 16 * 1024 * 1024), (3 * PART + 12_345, PART)])
async def test_a_file_arrives_byte_identical_under_its_relative_path(
    sshd: Sshd, tmp_path: Path, size: int, part_size: int
) -> None:
    source = random_file(tmp_path, size)
    config = key_config(sshd, path=f"{secrets.token_hex(4)}/2026/03/")
    async with opened(config, part_size) as store:
        stored = await store.put(source, object_key(config["path"], NAME))

    arrived = sshd.login_dir() / config["path"] / NAME
    assert sha256(arrived) == sha256(source)
    assert stored.size == size
    assert stored.checksum == f"sha256:{sha256(source)}"
    assert os.listdir(arrived.parent) == [NAME]  # no temporary file left behind


async def test_an_absolute_path_is_not_under_the_login_dir(sshd: Sshd, tmp_path: Path) -> None:
    source = random_file(tmp_path, 3 * PART + 1)
    target = tmp_path / "srv" / "recordings"
    config = key_config(sshd, path=str(target))
    async with opened(config) as store:
        assert store.destination == f"sftp {sshd.username}@127.0.0.1:{sshd.port}/{target}"
        await store.put(source, object_key(config["path"], NAME))
    assert sha256(target / NAME) == sha256(source)


async def test_a_second_put_replaces_the_file(sshd: Sshd, tmp_path: Path) -> None:
    config = key_config(sshd)
    key = object_key(config["path"], NAME)
    async with opened(config) as store:
        await store.put(random_file(tmp_path, 5 * PART), key)
        newer = random_file(tmp_path, PART + 7)
        stored = await store.put(newer, key)
    assert stored.size == PART + 7
    assert sha256(sshd.login_dir() / key) == sha256(newer)


# "openssh" (ssh-keygen's default) needs bcrypt, which pyproject.toml pins: without it this fails, not skips.
@pytest.mark.parametrize("key_format", ["openssh", "pkcs8-pem"])
async def test_a_passphrase_protected_key_logs_in(sshd: Sshd, tmp_path: Path, key_format: str) -> None:
    passphrase = secrets.token_urlsafe(12)
    encrypted = asyncssh.import_private_key(sshd.private_key).export_private_key(key_format, passphrase).decode()
    source = random_file(tmp_path, PART + 3)
    config = key_config(sshd, private_key=encrypted, password=passphrase)
    async with opened(config) as store:
        await store.put(source, object_key(config["path"], NAME))
    assert sha256(sshd.login_dir() / config["path"] / NAME) == sha256(source)


async def test_password_auth_uploads(sshd: Sshd, account: PasswordUser, tmp_path: Path) -> None:
    source = random_file(tmp_path, 2 * PART + 5)
    config = {
        "type": "sftp",
        "host": sshd.host,
        "port": sshd.port,
        "username": account.username,
        "auth_method": "PASSWORD",
        "password": account.password,
        "path": "uploads",
    }
    async with opened(config) as store:
        stored = await store.put(source, object_key("uploads", NAME))
    arrived = account.home / "uploads" / NAME
    assert sha256(arrived) == sha256(source)
    assert stored.checksum == f"sha256:{sha256(source)}"


async def test_without_host_key_any_key_is_accepted_and_its_fingerprint_logged(
    sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="recordkit.storage.sftp")
    config = key_config(sshd)
    del config["host_key"]
    async with opened(config) as store:
        await store.put(random_file(tmp_path, 10), object_key(config["path"], NAME))
    fingerprint = asyncssh.import_public_key(sshd.host_key).get_fingerprint()
    assert fingerprint in caplog.text


async def test_a_different_host_key_fails_before_anything_is_written(sshd: Sshd, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    config = key_config(sshd, host_key=other)
    accepted_before = sshd.log().count("Accepted ")
    async with opened(config) as store:
        with pytest.raises(StoreError) as raised:
            await store.put(random_file(tmp_path, 10), object_key(config["path"], NAME))
    assert raised.value.kind == "HostKeyNotVerifiable"
    assert not (sshd.login_dir() / config["path"]).exists()
    assert sshd.log().count("Accepted ") == accepted_before  # never even authenticated


def assert_no_secret(error: StoreError, caplog: pytest.LogCaptureFixture, *secret_values: str) -> None:
    for value in secret_values:
        for text in (str(error), repr(error), error.destination, caplog.text):
            assert value not in text
    key_body = [line for line in secret_values if "PRIVATE KEY" in line]
    for key in key_body:
        for line in key.splitlines()[1:-1]:
            assert line not in caplog.text and line not in str(error)


async def test_a_wrong_password_is_permission_denied_and_leaks_nothing(
    sshd: Sshd, account: PasswordUser, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = secrets.token_urlsafe(18)
    config = {
        "type": "sftp",
        "host": sshd.host,
        "port": sshd.port,
        "username": account.username,
        "auth_method": "PASSWORD",
        "password": wrong,
    }
    async with opened(config) as store:
        with pytest.raises(StoreError) as raised:
            await store.put(random_file(tmp_path, 10), NAME)
    assert raised.value.kind == "PermissionDenied"
    assert_no_secret(raised.value, caplog, wrong, account.password)
    assert not (account.home / NAME).exists()


async def test_a_key_the_server_does_not_know_is_refused_and_leaks_nothing(
    sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    passphrase = secrets.token_urlsafe(12)
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_private_key("pkcs8-pem", passphrase).decode()
    config = key_config(sshd, private_key=stranger, password=passphrase)
    async with opened(config) as store:
        with pytest.raises(StoreError) as raised:
            await store.put(random_file(tmp_path, 10), object_key(config["path"], NAME))
        assert raised.value.kind == "PermissionDenied"
        assert_no_secret(raised.value, caplog, stranger, passphrase)
        assert passphrase not in repr(store)


async def test_a_wrong_passphrase_is_a_key_error_that_leaks_nothing(
    sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    passphrase = secrets.token_urlsafe(12)
    encrypted = asyncssh.import_private_key(sshd.private_key).export_private_key("pkcs8-pem", passphrase).decode()
    wrong = secrets.token_urlsafe(12)
    config = key_config(sshd, private_key=encrypted, password=wrong)
    async with opened(config) as store:
        with pytest.raises(StoreError) as raised:
            await store.put(random_file(tmp_path, 10), object_key(config["path"], NAME))
    assert raised.value.kind == "KeyImportError"
    assert_no_secret(raised.value, caplog, encrypted, passphrase, wrong)


async def test_a_stopped_server_is_a_connection_error(tmp_path: Path) -> None:
    with sshd_server() as server:
        server.stop()
        config = key_config(server)
        async with opened(config) as store:
            with pytest.raises(StoreError) as raised:
                await store.put(random_file(tmp_path, 10), object_key(config["path"], NAME))
    assert raised.value.kind == "ConnectionRefusedError"
    assert raised.value.destination == f"sftp {server.username}@127.0.0.1:{server.port}/{config['path']}"


async def test_readers_never_see_a_half_written_file(sshd: Sshd, tmp_path: Path) -> None:
    config = key_config(sshd)
    key = object_key(config["path"], NAME)
    final = sshd.login_dir() / key
    old, new = random_file(tmp_path, PART), random_file(tmp_path, 64 * PART + 9)
    seen_final: set[str] = set()
    seen_temp = threading.Event()
    done = threading.Event()

    def watch() -> None:
        # Opening the final name gives one inode: with a rename it is the whole old or the whole new file.
        while not done.is_set():
            if any(name != NAME for name in os.listdir(final.parent)):
                seen_temp.set()
            seen_final.add(sha256(final))

    async with opened(config) as store:
        await store.put(old, key)
        watcher = asyncio.create_task(asyncio.to_thread(watch))
        try:
            await store.put(new, key)
        finally:
            done.set()
            await watcher

    assert seen_final <= {sha256(old), sha256(new)}, "a reader saw a partial file under the final name"
    assert seen_temp.is_set(), "the watcher never saw the upload in progress: this test proved nothing"
    assert sha256(final) == sha256(new)
    assert os.listdir(final.parent) == [NAME]


async def test_stat_and_delete(sshd: Sshd, tmp_path: Path) -> None:
    source = random_file(tmp_path, 2 * PART + 1)
    config = key_config(sshd)
    key = object_key(config["path"], NAME)
    async with opened(config) as store:
        assert await store.stat(key) is None
        await store.put(source, key)
        cheap = await store.stat(key)
        assert cheap is not None and (cheap.size, cheap.checksum) == (2 * PART + 1, f"size:{2 * PART + 1}")
        reread = await store.stat(key, rehash=True)
        assert reread is not None and reread.checksum == f"sha256:{sha256(source)}"
        assert store.url(key, 2_000_000_000) is None
        await store.delete(key)
        assert not (sshd.login_dir() / key).exists()
        await store.delete(key)  # already gone: nothing to do
        assert await store.stat(key) is None


async def test_a_dropped_connection_is_replaced_at_the_next_call(sshd: Sshd, tmp_path: Path) -> None:
    source = random_file(tmp_path, 2 * PART)
    config = key_config(sshd)
    key = object_key(config["path"], NAME)
    async with opened(config) as store:
        await store.put(source, key)
        # sshd serves each connection from a child process: killing ours is the network dropping it.
        children = sshd.session_pids()
        assert children, "no session process found under sshd"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        # The call that meets the dead connection may fail (retries are the upload job's); the store must not
        # stay broken: the one after it reconnects.
        with contextlib.suppress(StoreError):
            await store.delete(key)
        stored = await store.put(source, key)
    assert stored.checksum == f"sha256:{sha256(source)}"
    assert sha256(sshd.login_dir() / key) == sha256(source)
