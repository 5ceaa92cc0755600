"""The database handle: one async engine, read and write sessions, SQLite tuned for one writer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Database:
    """Owns the engine. `read()` for queries, `write()` for a transaction that may change rows.

    On SQLite a write transaction starts with `BEGIN IMMEDIATE`, so two writers never interleave
    read-check-write sequences (the one-active-recording rule relies on it); on PostgreSQL the
    services lock the rows they decide on with `SELECT ... FOR UPDATE`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
        if self.is_sqlite:
            options["connect_args"] = {"timeout": 30}
        else:
            options.update(pool_size=10, max_overflow=20, pool_pre_ping=False)
        self.engine = create_async_engine(url, **options)
        if self.is_sqlite:
            _tune_sqlite(self.engine.sync_engine)
        writer = self.engine.execution_options(sqlite_begin="BEGIN IMMEDIATE") if self.is_sqlite else self.engine
        self._reads = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writes = async_sessionmaker(writer, expire_on_commit=False)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries; nothing it does is committed."""
        async with self._reads() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction, committed when the block ends without an error."""
        async with self._writes() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()


def _tune_sqlite(sync_engine: Any) -> None:
    @event.listens_for(sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below decide how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))
