"""Wake-ups between the parts of recordkit, delivered when the transaction that caused them commits.

A wake-up is a hint, never the truth: the rows are. Whoever listens also looks at the rows on a timer, so a
wake-up lost to a crash or a dropped connection only delays what it announces. On PostgreSQL it is a
`NOTIFY` in the caller's transaction, which PostgreSQL itself delivers at commit to every process that
listens; on SQLite, where one process owns the database, it is a direct call after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

Listener = Callable[[str], None]

# A recorder's wanted state changed (payload: recording id); its owner applies it.
CONTROL = "recordkit_control"
# A capture ended: its recording left RECORDING/PAUSED (payload: recording id); a waiting stop answers.
CAPTURE_ENDED = "recordkit_capture_ended"
# A job was queued for the embedded runner (payload: queue name).
JOBS = "recordkit_jobs"

_PENDING = "recordkit.bus.pending"


class Bus(Protocol):
    async def publish(self, session: AsyncSession, channel: str, payload: str) -> None:
        """Announce `payload` on `channel` once the session's transaction commits (never if it rolls back)."""

    def subscribe(self, channel: str, listener: Listener) -> None:
        """Call `listener(payload)` on this process's event loop for every announcement on `channel`."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class _Listeners:
    def __init__(self) -> None:
        self._by_channel: dict[str, list[Listener]] = defaultdict(list)

    def add(self, channel: str, listener: Listener) -> None:
        self._by_channel[channel].append(listener)

    def deliver(self, channel: str, payload: str) -> None:
        for listener in self._by_channel.get(channel, ()):
            try:
                listener(payload)
            except Exception:
                log.exception("a listener of %s failed", channel)


class LocalBus:
    """One process: announcements are delivered on the event loop right after the commit."""

    def __init__(self) -> None:
        self._listeners = _Listeners()

    async def publish(self, session: AsyncSession, channel: str, payload: str) -> None:
        pending: list[tuple[str, str]] | None = session.info.get(_PENDING)
        if pending is None:
            pending = session.info[_PENDING] = []
            loop = asyncio.get_running_loop()
            sync_session = session.sync_session

            def committed(_session: Any) -> None:
                for announced in sync_session.info.pop(_PENDING, []):
                    loop.call_soon(self._listeners.deliver, *announced)

            def rolled_back(_session: Any, _transaction: Any) -> None:
                sync_session.info.pop(_PENDING, None)

            event.listen(sync_session, "after_commit", committed, once=True)
            event.listen(sync_session, "after_soft_rollback", rolled_back, once=True)
        pending.append((channel, payload))

    def subscribe(self, channel: str, listener: Listener) -> None:
        self._listeners.add(channel, listener)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class PostgresBus:
    """Many processes on one PostgreSQL: `NOTIFY` in the transaction, `LISTEN` on a connection of our own."""

    RECONNECT_S = 2.0

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._listeners = _Listeners()
        self._channels: set[str] = set()
        self._watch: asyncio.Task[None] | None = None

    async def publish(self, session: AsyncSession, channel: str, payload: str) -> None:
        await session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})

    def subscribe(self, channel: str, listener: Listener) -> None:
        self._channels.add(channel)
        self._listeners.add(channel, listener)

    async def start(self) -> None:
        connected = asyncio.get_running_loop().create_future()
        self._watch = asyncio.create_task(self._listen_forever(connected))
        await connected

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def _listen_forever(self, connected: asyncio.Future[None]) -> None:
        """Hold a listening connection; when it drops, connect again (listeners poll meanwhile)."""
        while True:
            try:
                connection = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as error:
                if not connected.done():
                    connected.set_exception(error)
                    return
                log.warning("cannot listen for wake-ups (%s); retrying in %.0f s", error, self.RECONNECT_S)
                await asyncio.sleep(self.RECONNECT_S)
                continue
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
            try:
                for channel in self._channels:
                    await connection.add_listener(channel, self._on_notify)
                if not connected.done():
                    connected.set_result(None)
                await lost.wait()
                log.warning("the wake-up connection was lost; listening again")
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(connection.close(timeout=2))

    def _on_notify(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        self._listeners.deliver(channel, payload)
