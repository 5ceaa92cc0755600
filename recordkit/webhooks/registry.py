"""Webhook registrations (meetings.md §7.1): where an app wants its events sent."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from recordkit.clock import utcnow
from recordkit.db.engine import Database
from recordkit.db.models import Webhook, WebhookDelivery
from recordkit.errors import UnknownId
from recordkit.schema import Arr, Bool, Field, Obj, Str, ValidationFailed

EVENTS = (
    "meeting.started",
    "meeting.ended",
    "meeting.participantJoined",
    "meeting.participantLeft",
    "meeting.chatSynced",
    "recording.statusUpdate",
    "livestreaming.statusUpdate",
    "meeting.transcript",
    "meeting.summary",
)


def _fields(required: bool) -> tuple[Field, ...]:
    return (
        Field("name", Str(min_length=1, max_length=255), required=required),
        Field("url", Str(format="uri", uri_schemes=("http", "https"), max_length=2048), required=required),
        Field("events", Arr(Str(enum=EVENTS), min_items=1, unique=True), required=required),
        Field("enabled", Bool()),
    )


CREATE_BODY = Obj(_fields(required=True))
PATCH_BODY = Obj(_fields(required=False))


def check_url(fields: dict[str, Any]) -> None:
    """A webhook URL must name a host to deliver to; `http:foo` is a URI but not a receiver."""
    if "url" in fields and not urlsplit(fields["url"]).hostname:
        raise ValidationFailed("url", "must be a valid uri")


async def create_webhook(db: Database, app_id: str, fields: dict[str, Any]) -> Webhook:
    """A new webhook of the app from validated body `fields` (enabled unless told otherwise)."""
    check_url(fields)
    now = utcnow()
    webhook = Webhook(
        id=str(uuid.uuid4()),
        app_id=app_id,
        name=fields["name"],
        url=fields["url"],
        events=fields["events"],
        enabled=fields.get("enabled", True),
        created_at=now,
        updated_at=now,
    )
    async with db.write() as session:
        session.add(webhook)
    return webhook


async def list_webhooks(db: Database, app_id: str) -> list[Webhook]:
    """Every webhook of the app, oldest first."""
    async with db.read() as session:
        rows = await session.scalars(
            select(Webhook).where(Webhook.app_id == app_id).order_by(Webhook.created_at, Webhook.id)
        )
        return list(rows)


async def get_webhook(db: Database, app_id: str, webhook_id: str) -> Webhook:
    """The app's webhook with this id, or 404."""
    async with db.read() as session:
        webhook = await session.get(Webhook, webhook_id.lower())
    if webhook is None or webhook.app_id != app_id:
        raise UnknownId("webhook", webhook_id)
    return webhook


async def update_webhook(db: Database, webhook: Webhook, fields: dict[str, Any], *, replace: bool) -> Webhook:
    """PATCH (given fields replace stored ones) or PUT (`replace`: a full body, `enabled` defaulting to true)."""
    check_url(fields)
    if replace:
        fields = {"enabled": True, **fields}
    async with db.write() as session:
        stored = await session.get(Webhook, webhook.id)
        if stored is None:
            raise UnknownId("webhook", webhook.id)
        for name, value in fields.items():
            setattr(stored, name, value)
        stored.updated_at = utcnow()
    return stored


async def delete_webhook(db: Database, webhook: Webhook) -> Webhook:
    """Delete the webhook; returns it as it was."""
    async with db.write() as session:
        stored = await session.get(Webhook, webhook.id)
        if stored is None:
            raise UnknownId("webhook", webhook.id)
        await session.delete(stored)
    return stored


async def list_deliveries(
    db: Database, webhook: Webhook, page_no: int, per_page: int
) -> tuple[list[WebhookDelivery], int]:
    """A page of the webhook's deliveries, newest first, and how many there are (meetings.md §7.1)."""
    async with db.read() as session:
        total = await session.scalar(
            select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
        )
        rows = await session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook.id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.event_id.desc())
            .offset((page_no - 1) * per_page)
            .limit(per_page)
        )
        return list(rows.scalars()), total or 0
