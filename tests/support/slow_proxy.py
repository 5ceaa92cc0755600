"""A TCP proxy on 127.0.0.1 that forwards to a server at a set pace, so a test can act while an upload is in
flight (stop the server half-way through a PUT, say). Real sockets both ways; it only slows and counts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

CHUNK = 16 * 1024


class SlowProxy:
    """Forwards every connection to `target_port`, client → server at most `bytes_per_s`; counts what went up."""

    def __init__(self, target_port: int, bytes_per_s: int) -> None:
        self.target_port = target_port
        self.bytes_per_s = bytes_per_s
        self.sent_up = 0
        self.port = 0
        self._progress = asyncio.Event()

    async def sent_at_least(self, count: int) -> None:
        """Wait until `count` bytes went from clients to the server."""
        while self.sent_up < count:
            self._progress.clear()
            await self._progress.wait()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        up = asyncio.create_task(self._pipe(client_reader, server_writer, paced=True))
        down = asyncio.create_task(self._pipe(server_reader, client_writer, paced=False))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for writer in (client_writer, server_writer):
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, paced: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
                if paced:
                    self.sent_up += len(data)
                    self._progress.set()
                    await asyncio.sleep(len(data) / self.bytes_per_s)


@contextlib.asynccontextmanager
async def slow_proxy(target_port: int, bytes_per_s: int) -> AsyncIterator[SlowProxy]:
    proxy = SlowProxy(target_port, bytes_per_s)
    server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)
