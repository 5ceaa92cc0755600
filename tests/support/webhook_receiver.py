"""A webhook receiver on 127.0.0.1 for tests and benches: a real aiohttp server that checks every signature with
the public key recordkit publishes, and can be told to fail, to refuse, or to go away and come back."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.server import free_port


def public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def verifies(key: rsa.RSAPublicKey, body: bytes, signature: str) -> bool:
    """Whether `signature` (base64 RSA PKCS#1 v1.5 SHA-256) is `key`'s over exactly `body`."""
    try:
        key.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class Received:
    uuid: str
    webhook_id: str
    body: bytes
    payload: dict[str, Any]
    headers: dict[str, str]
    arrived_s: float  # time.time()


@dataclass
class Receiver:
    """Accepts POSTs at `url`; `answer(n)` gives the status for the n-th request (0-based), 200 by default."""

    key: rsa.RSAPublicKey
    port: int = field(default_factory=free_port)
    answer: Callable[[int], int] = lambda _: 200
    requests: int = 0
    uuids: list[str] = field(default_factory=list)  # of every request, refused ones too
    accepted: list[Received] = field(default_factory=list)
    bad_signatures: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def unique(self) -> list[Received]:
        """What was accepted, each `rtk-uuid` once (a retry of a delivered one is the receiver's to drop)."""
        seen: set[str] = set()
        kept = []
        for item in self.accepted:
            if item.uuid not in seen:
                seen.add(item.uuid)
                kept.append(item)
        return kept

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        index = self.requests
        self.requests += 1
        self.uuids.append(request.headers.get("rtk-uuid", ""))
        if not verifies(self.key, body, request.headers.get("rtk-signature", "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        status = self.answer(index)
        if 200 <= status < 300:
            headers = dict(request.headers)
            uuid, webhook_id = headers["rtk-uuid"], headers["rtk-webhook-id"]
            self.accepted.append(Received(uuid, webhook_id, body, json.loads(body), headers, time.time()))
        self._arrived.set()
        return web.Response(status=status)

    async def wait_for_requests(self, count: int, timeout_s: float) -> None:
        """Until `count` requests came (signed or not, answered whatever way), or the timeout."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.requests < count:
                    self._arrived.clear()
                    await self._arrived.wait()


@contextlib.asynccontextmanager
async def webhook_receiver(public_key_pem: str, answer: Callable[[int], int] | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver(public_key(public_key_pem))
    if answer is not None:
        receiver.answer = answer
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
