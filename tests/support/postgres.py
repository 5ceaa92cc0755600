"""PostgreSQL servers and throwaway databases for the test suite.

No pytest imports here; fixtures wrap these context managers::

    with postgres_server() as server_url:          # postgresql://postgres@127.0.0.1:5432
        with fresh_database(server_url) as db_url:  # postgresql+asyncpg://.../recordkit_test_<hex>
            ...

:func:`postgres_server` uses the server on ``127.0.0.1:5432`` when one answers there with trust
authentication for user ``postgres``. Otherwise it starts a private, throwaway cluster from the
Debian ``postgresql`` server binaries (``/usr/lib/postgresql/<version>/bin``, installed by
``scripts/setup.sh``) on a free port, and stops and deletes it on exit.

Environment variables:

``RECORDKIT_TEST_PG_FORCE_LOCAL=1``
    Skip the ``127.0.0.1:5432`` probe and always start a throwaway cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import asyncpg

__all__ = ["FORCE_LOCAL_ENV", "PostgresUnavailable", "fresh_database", "postgres_server"]

FORCE_LOCAL_ENV = "RECORDKIT_TEST_PG_FORCE_LOCAL"

_DEFAULT_HOST = "127.0.0.1"
_DEFAULT_PORT = 5432
_SUPERUSER = "postgres"
_CONNECT_TIMEOUT = 5.0
_START_TIMEOUT = 60  # seconds, for pg_ctl -w
_SERVER_OPTIONS = "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"

_T = TypeVar("_T")


class PostgresUnavailable(RuntimeError):
    """Raised when no PostgreSQL server can be found or started."""


# -- helpers --------------------------------------------------------------------------------------


def _run_async(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # A loop is running in this thread (e.g. an async fixture): use a private one elsewhere.
    result: list[_T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="recordkit-test-pg")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _parse_server_url(server_url: str) -> dict[str, Any]:
    parts = urlsplit(server_url)
    if parts.scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql:// URL: {server_url!r}")
    return {
        "host": parts.hostname or _DEFAULT_HOST,
        "port": parts.port or _DEFAULT_PORT,
        "user": unquote(parts.username) if parts.username else _SUPERUSER,
        "password": unquote(parts.password) if parts.password else None,
    }


async def _execute(server_url: str, *statements: str, database: str = "postgres") -> None:
    conn = await asyncpg.connect(database=database, timeout=_CONNECT_TIMEOUT, **_parse_server_url(server_url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _answers_with_trust(host: str, port: int) -> bool:
    """True if a server on host:port lets user ``postgres`` in without a password."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError:
        return False
    try:
        _run_async(_execute(f"postgresql://{_SUPERUSER}@{host}:{port}", "SELECT 1"))
    except Exception:  # refused, password required, not PostgreSQL at all, ...
        return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_DEFAULT_HOST, 0))
        return int(sock.getsockname()[1])


def _find_bindir() -> Path:
    """Directory holding initdb/pg_ctl: newest /usr/lib/postgresql/*/bin, else $PATH."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name))

    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").is_file()]
    if candidates:
        return max(candidates, key=version)
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).resolve().parent / "pg_ctl").is_file():
        return Path(initdb).resolve().parent
    raise PostgresUnavailable(
        "no PostgreSQL server answers on 127.0.0.1:5432 and no server binaries were found "
        "(/usr/lib/postgresql/*/bin); install the Debian 'postgresql' package (scripts/setup.sh does)"
    )


def _world_traversable(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


class _Runner:
    """Runs PostgreSQL tools as the current user, or as ``postgres`` when we are root."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        self.owner: pwd.struct_passwd | None = None
        if self.as_root:
            try:
                self.owner = pwd.getpwnam(_SUPERUSER)
            except KeyError:
                raise PostgresUnavailable(
                    "running as root but there is no 'postgres' user to run initdb as "
                    "(install the Debian 'postgresql' package)"
                ) from None

    def make_tempdir(self) -> Path:
        base = Path(tempfile.gettempdir())
        if self.as_root and not _world_traversable(base):
            base = Path("/tmp")  # the postgres user must be able to reach the cluster directory
        path = Path(tempfile.mkdtemp(prefix="recordkit-pg-", dir=base))
        if self.owner is not None:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)
        self.mkdir(path / "sock")
        return path

    def mkdir(self, path: Path) -> None:
        path.mkdir()
        if self.owner is not None:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)

    def run(self, cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        if self.owner is not None:
            cmd = ["runuser", "-u", self.owner.pw_name, "--", *cmd]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        return subprocess.run(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )


def _check(proc: subprocess.CompletedProcess[str], what: str, log: Path | None = None) -> None:
    if proc.returncode == 0:
        return
    details = (proc.stdout + proc.stderr).strip()
    if log is not None and log.exists():
        details += "\n--- server log ---\n" + log.read_text(errors="replace")[-4000:]
    raise PostgresUnavailable(f"{what} failed (exit {proc.returncode}):\n{details}")


def _kill_postmaster(datadir: Path) -> None:
    """Last resort when ``pg_ctl stop`` failed: SIGKILL the postmaster named in postmaster.pid."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[str]:
    bindir = _find_bindir()
    runner = _Runner()
    workdir = runner.make_tempdir()
    datadir, sockdir, logfile = workdir / "data", workdir / "sock", workdir / "postgres.log"
    try:
        initdb = [str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", _SUPERUSER]
        initdb += ["--encoding=UTF8", "--locale=C", "--no-sync"]
        _check(runner.run(initdb, cwd=workdir), "initdb")
        url = ""
        for attempt in range(3):  # the free port may get taken between _free_port() and the bind
            port = _free_port()
            options = f"-c listen_addresses={_DEFAULT_HOST} -p {port} -k {sockdir} {_SERVER_OPTIONS}"
            pg_ctl = [str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(logfile), "-o", options]
            proc = runner.run([*pg_ctl, "-t", str(_START_TIMEOUT), "-w", "start"], cwd=workdir)
            if proc.returncode == 0:
                url = f"postgresql://{_SUPERUSER}@{_DEFAULT_HOST}:{port}"
                break
            if attempt == 2:
                _check(proc, "pg_ctl start", logfile)
        yield url
    finally:
        if (datadir / "postmaster.pid").exists():
            stop = runner.run(
                [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"], cwd=workdir
            )
            if stop.returncode != 0:
                _kill_postmaster(datadir)
        shutil.rmtree(workdir, ignore_errors=True)


# -- public API -----------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the base URL (``postgresql://USER@HOST:PORT``) of a server tests may create databases in.

    Uses the server on 127.0.0.1:5432 if it accepts user ``postgres`` without a password (unless
    ``RECORDKIT_TEST_PG_FORCE_LOCAL=1``); otherwise starts a throwaway cluster on a free port that is
    stopped and deleted when the context exits. Raises :class:`PostgresUnavailable` if neither works.
    """
    force_local = os.environ.get(FORCE_LOCAL_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if not force_local and _answers_with_trust(_DEFAULT_HOST, _DEFAULT_PORT):
        yield f"postgresql://{_SUPERUSER}@{_DEFAULT_HOST}:{_DEFAULT_PORT}"
        return
    with _throwaway_cluster() as url:
        yield url


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """Create an empty database on ``server_url`` and yield its SQLAlchemy asyncpg URL.

    The database is named ``recordkit_test_<hex>`` and the URL has the form
    ``postgresql+asyncpg://USER@HOST:PORT/<name>``. The database is dropped on exit, with
    ``WITH (FORCE)`` so connections the test left open do not block the drop.
    """
    name = f"recordkit_test_{uuid.uuid4().hex}"
    _run_async(_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        authority = server_url.rstrip("/").split("://", 1)[1]
        yield f"postgresql+asyncpg://{authority}/{name}"
    finally:
        _run_async(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
