"""Sending webhook deliveries (meetings.md §7.2): signed POSTs, retried, in order per webhook and stream.

Everything is in the `webhook_deliveries` rows, so a restart or another process carries on where this one
stopped. Each pass reads the PENDING rows oldest event first; the first of each (webhook, stream) is the only
one that may go — the next waits until it was delivered or finally failed. A process takes a row by setting
`claimed_until` (a lease past the request's timeout); one that dies mid-send leaves it to be sent again,
with the same `rtk-uuid`, when the lease runs out: at least once, never out of order.

Any 2xx delivers; a 5xx, a timeout or a connection error is retried after 1, 2, 4, 8 and 16 s (±20 %);
anything else (3xx, 4xx) fails for good. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import delete, select, update

from recordkit.clock import utcnow
from recordkit.db.engine import Database
from recordkit.db.models import Webhook, WebhookDelivery, WebhookEvent
from recordkit.metrics import Metrics
from recordkit.webhooks.events import DELIVERED, FAILED, PENDING
from recordkit.webhooks.signing import WebhookSigner

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)
JITTER = 0.2
# Held past the request's timeout, so no other pass sends the same delivery meanwhile.
CLAIM_S = TIMEOUT_S + 20.0
POLL_S = 0.2
# Rows read per pass, and requests in flight at once.
BATCH = 500
MAX_IN_FLIGHT = 16
PRUNE_EVERY_S = 600.0


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a status code, or an error class when no answer came."""

    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        return self.status_code is None or self.status_code >= 500


def next_state(attempts: int, outcome: Outcome, now: datetime, rng: random.Random) -> tuple[str, datetime | None]:
    """After attempt number `attempts`: the delivery's status and, when PENDING, when to try again."""
    if outcome.delivered:
        return DELIVERED, None
    if not outcome.retryable or attempts > len(RETRY_DELAYS_S):
        return FAILED, None
    delay_s = RETRY_DELAYS_S[attempts - 1] * rng.uniform(1 - JITTER, 1 + JITTER)
    return PENDING, now + timedelta(seconds=delay_s)


class WebhookDispatcher:
    """Sends this deployment's pending deliveries, from every process that runs one."""

    def __init__(self, db: Database, signer: WebhookSigner, metrics: Metrics, rng: random.Random | None = None) -> None:
        self.db = db
        self.signer = signer
        self.metrics = metrics
        self._rng = rng or random.Random()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._finished = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False)

    async def run_forever(self) -> None:
        try:
            while True:
                self._finished.clear()
                try:
                    await self.pass_once()
                except Exception:
                    log.exception("a webhook delivery pass failed; the next one tries again")
                # A delivery that ended lets the next of its line go at once; new events are found by polling.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_S):
                        await self._finished.wait()
        finally:
            cut = list(self._in_flight)
            for task in self._in_flight.values():
                task.cancel()
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
            await self._client.aclose()
            await self._release(cut)

    async def _release(self, delivery_ids: list[str]) -> None:
        """Hand back deliveries cut short by a shutdown, so the next process need not wait out their claims."""
        if not delivery_ids:
            return
        try:
            async with self.db.write() as session:
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.status == PENDING)
                    .values(claimed_until=None)
                )
        except Exception:
            log.exception("could not hand back %d webhook deliveries; their claims run out instead", len(delivery_ids))

    async def pass_once(self) -> None:
        """Start sending every delivery that is due and first in its line."""
        now = utcnow()
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.status == PENDING)
                    .order_by(WebhookDelivery.event_id)
                    .limit(BATCH)
                )
            ).scalars()
            heads: dict[tuple[str, str], WebhookDelivery] = {}
            for row in rows:
                heads.setdefault((row.webhook_id, row.stream), row)
        room = MAX_IN_FLIGHT - len(self._in_flight)
        ready = [
            delivery.id
            for delivery in heads.values()
            if delivery.next_attempt_at <= now
            and (delivery.claimed_until is None or delivery.claimed_until <= now)
            and delivery.id not in self._in_flight
        ][: max(0, room)]
        for delivery_id in await self._claim(ready, now):
            task = asyncio.create_task(self._send(delivery_id))
            self._in_flight[delivery_id] = task
            task.add_done_callback(lambda _, key=delivery_id: self._ended(key))

    def _ended(self, delivery_id: str) -> None:
        self._in_flight.pop(delivery_id, None)
        self._finished.set()

    async def _claim(self, delivery_ids: list[str], now: datetime) -> list[str]:
        """Those of `delivery_ids` this process now holds: one transaction, a conditional update each, so two
        processes never both take one."""
        if not delivery_ids:
            return []
        claimed = []
        async with self.db.write() as session:
            for delivery_id in delivery_ids:
                result = await session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.status == PENDING,
                        (WebhookDelivery.claimed_until.is_(None)) | (WebhookDelivery.claimed_until <= now),
                    )
                    .values(claimed_until=now + timedelta(seconds=CLAIM_S))
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    claimed.append(delivery_id)
        return claimed

    async def _send(self, delivery_id: str) -> None:
        async with self.db.read() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            assert delivery is not None
            event = await session.get(WebhookEvent, delivery.event_id)
            webhook = await session.get(Webhook, delivery.webhook_id)
        if event is None or webhook is None:
            gone = "webhook deleted" if webhook is None else "event pruned"
            await self._record(delivery, Outcome(None, gone), final=True)
            return
        body = event.body.encode()
        outcome = await self._post(webhook.url, body, delivery.id, webhook.id)
        await self._record(delivery, outcome)

    async def _post(self, url: str, body: bytes, delivery_id: str, webhook_id: str) -> Outcome:
        signature = self.signer.sign(body)
        headers = {"content-type": "application/json"}
        for prefix in ("rtk", "dyte"):
            headers |= {
                f"{prefix}-signature": signature,
                f"{prefix}-uuid": delivery_id,
                f"{prefix}-webhook-id": webhook_id,
            }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return Outcome(None, type(error).__name__)
        return Outcome(response.status_code, None if response.is_success else f"HTTP {response.status_code}")

    async def _record(self, delivery: WebhookDelivery, outcome: Outcome, final: bool = False) -> None:
        now = utcnow()
        attempts = delivery.attempts + 1
        status, retry_at = (FAILED, None) if final else next_state(attempts, outcome, now, self._rng)
        async with self.db.write() as session:
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery.id)
                .values(
                    status=status,
                    attempts=attempts,
                    last_status_code=outcome.status_code,
                    last_error=outcome.error,
                    next_attempt_at=retry_at or now,
                    claimed_until=None,
                    finished_at=None if status == PENDING else now,
                )
            )
        self.metrics.webhook_attempted(status)
        if status != DELIVERED:
            log.warning("webhook delivery %s (%s) attempt %d: %s → %s", delivery.id, delivery.event, attempts,
                        outcome.error, status)  # fmt: skip


async def prune_deliveries_forever(db: Database, older_than: timedelta, interval_s: float = PRUNE_EVERY_S) -> None:
    while True:
        try:
            await prune_deliveries(db, older_than)
        except Exception:
            log.exception("pruning old webhook deliveries failed; trying again later")
        await asyncio.sleep(interval_s)


async def prune_deliveries(db: Database, older_than: timedelta) -> None:
    """Forget deliveries that ended, and outbox events, older than `older_than` (meetings.md §7.1)."""
    cutoff = utcnow() - older_than
    async with db.write() as session:
        await session.execute(
            delete(WebhookDelivery).where(WebhookDelivery.status != PENDING, WebhookDelivery.finished_at < cutoff)
        )
        pending = select(WebhookDelivery.event_id).where(WebhookDelivery.status == PENDING)
        await session.execute(
            delete(WebhookEvent).where(WebhookEvent.created_at < cutoff, WebhookEvent.id.not_in(pending))
        )
