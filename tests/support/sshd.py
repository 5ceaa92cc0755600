"""A real OpenSSH server (Debian `openssh-server`) on a free 127.0.0.1 port, for the SFTP store's tests and
benches.

No pytest imports here; fixtures wrap these context managers::

    with sshd_server() as server:                  # key auth for the current user
        ...server.host, server.port, server.username, server.private_key, server.host_key
        with password_user(server) as user:        # root only: a throwaway OS user with a password
            ...user.username, user.password, user.home

The server has its own host key, pid file and authorized_keys in a private directory, never the machine's.
Every user's SFTP session starts in `<dir>/home/<user>` (`internal-sftp -d`), so relative paths land in a
throwaway directory the test can read from the local filesystem, not in the real home directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from tests.support.server import free_port

__all__ = ["PasswordUser", "Sshd", "SshdUnavailable", "password_user", "sshd_server"]

READY_TIMEOUT_S = 10
STOP_TIMEOUT_S = 5


class SshdUnavailable(RuntimeError):
    """sshd is not installed, or exited or did not answer in time; the message carries its log."""


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    username: str
    private_key: str  # OpenSSH format, unencrypted; its public key is the only authorized key
    host_key: str  # the server's OpenSSH public key line
    base_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def login_dir(self, username: str | None = None) -> Path:
        """Where `username`'s SFTP session starts (relative paths resolve here)."""
        return self.base_dir / "home" / (username or self.username)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def storage_config(self, path: str | None = None, host_key: str | None = None) -> dict[str, Any]:
        """A `storage_config` (recordings.md §10.4) that uploads here with the test's key, pinning `host_key`
        (this server's own unless given). A relative `path` is under the login dir; an absolute one is not."""
        config = {
            "type": "sftp", "host": self.host, "port": self.port, "username": self.username, "auth_method": "KEY",
            "private_key": self.private_key, "host_key": host_key or self.host_key,
        }  # fmt: skip
        return config if path is None else {**config, "path": path}

    def session_pids(self) -> list[int]:
        """The processes serving open connections: sshd forks one child per connection (Linux /proc)."""
        pid = self.process.pid
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def stop(self) -> None:
        """Stop the listener (idempotent); open sessions, which are child processes, end with their clients."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class PasswordUser:
    username: str
    password: str
    home: Path  # also its SFTP login directory


def _sshd_binary() -> str:
    # sshd re-executes itself and refuses to start from a relative path.
    found = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.access(found, os.X_OK):
        raise SshdUnavailable("sshd not found: install Debian openssh-server (scripts/setup.sh)")
    return found


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _wait_for_banner(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    """An open port is not enough: wait until sshd answers with its SSH banner."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SshdUnavailable(f"sshd exited with {process.returncode}: {log_path.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                if conn.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SshdUnavailable(f"sshd did not answer on port {port}: {log_path.read_text(errors='replace')}")


@contextlib.contextmanager
def sshd_server() -> Iterator[Sshd]:
    """Start `sshd -D -e` on a free 127.0.0.1 port, yield it, then stop it and delete its directory."""
    binary = _sshd_binary()
    username = pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        # The privilege-separation directory Debian's sshd insists on; only root can (and needs to) make it.
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="recordkit-sshd-"))
    try:
        # A throwaway password user's session must traverse it to reach its login dir; listing stays closed.
        base.chmod(0o711)
        (base / "home" / username).mkdir(parents=True)
        # Explicit modes: mkdir's are cut by the umask, and a test may run under recordkit's 077.
        (base / "home").chmod(0o755)
        (base / "home" / username).chmod(0o755)

        host_key = asyncssh.generate_private_key("ssh-ed25519")
        _write_private(base / "ssh_host_ed25519_key", host_key.export_private_key("openssh"))
        client_key = asyncssh.generate_private_key("ssh-ed25519", comment="recordkit-test")
        (base / "authorized_keys").write_bytes(client_key.export_public_key("openssh"))

        port = free_port()
        config = base / "sshd_config"
        config.write_text(
            f"Port {port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {base / 'ssh_host_ed25519_key'}\n"
            f"PidFile {base / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {base / 'authorized_keys'}\n"
            "StrictModes no\n"
            "UsePAM no\n"
            "PasswordAuthentication yes\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "LogLevel VERBOSE\n"
            f"Subsystem sftp internal-sftp -d {base / 'home'}/%u\n"
        )
        log_path = base / "sshd.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
        server = Sshd(
            host="127.0.0.1",
            port=port,
            username=username,
            private_key=client_key.export_private_key("openssh").decode(),
            host_key=host_key.export_public_key("openssh").decode().strip(),
            base_dir=base,
            log_path=log_path,
            process=process,
        )
        try:
            _wait_for_banner(process, port, log_path)
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def password_user(server: Sshd) -> Iterator[PasswordUser]:
    """A throwaway OS user with a random password whose login dir is in the server's directory (root only)."""
    if os.geteuid() != 0:
        raise PermissionError("creating a throwaway OS user for password auth needs root")
    username = f"rk{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(18)
    home = server.login_dir(username)
    subprocess.run(
        ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh", username],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(["chpasswd"], input=f"{username}:{password}\n".encode(), check=True, capture_output=True)
        yield PasswordUser(username=username, password=password, home=home)
    finally:
        # sshd keeps a session process per client; the store under test closes its own before this runs.
        subprocess.run(["userdel", "--remove", username], check=False, capture_output=True)
