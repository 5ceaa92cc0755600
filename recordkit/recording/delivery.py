"""Delivery of a recording's finished files to its external store (`storage_config`, recordings.md §10.4).

Each destination has a `store_uploads` row: its attempts, the last error (destination and error class, never a
secret) and, file by file, the size and checksum the target confirmed. A retry after a failure or a restart
skips what was confirmed, so a large file that arrived is not sent again because the next one failed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.clock import utcnow
from recordkit.db.engine import Database
from recordkit.db.models import Recording, StoreUpload
from recordkit.metrics import Metrics
from recordkit.storage.secrets import SecretBox
from recordkit.storage.store import StoredObject, StoreError, UploadSettings, object_key
from recordkit.storage.stores import open_store

log = logging.getLogger(__name__)

PENDING, CONFIRMED, FAILED = "pending", "confirmed", "failed"


class DeliveryFailed(Exception):
    """A file did not reach its destination; the message names the destination and the error class only."""

    def __init__(self, destination: str, kind: str) -> None:
        super().__init__(f"upload to {destination} failed: {kind}")
        self.destination = destination
        self.kind = kind


async def deliver(
    db: Database,
    secrets: SecretBox,
    settings: UploadSettings,
    recording: Recording,
    files: Sequence[tuple[str, Path]],
    metrics: Metrics,
) -> None:
    """Put every file at `{path}/{file_name}` in the recording's store and record each confirmation; raises
    `DeliveryFailed` at the first file the store does not confirm."""
    assert recording.storage_config is not None
    config = {**recording.storage_config, **secrets.open(recording.storage_secrets)}
    target = config["type"]
    try:
        store = open_store(config, settings)
    except Exception as error:
        metrics.upload_attempted(target, succeeded=False)
        raise DeliveryFailed(f"{target} storage", type(error).__name__) from None
    destination = store.destination
    confirmed = await _begin(db, recording.id, destination)
    try:
        for name, path in files:
            if name in confirmed:
                continue
            stored = await store.put(path, object_key(config.get("path"), name))
            metrics.upload_stored(target, stored.size)
            confirmed[name] = await _confirm(db, recording.id, destination, name, stored)
            log.info("recording %s: %s confirmed %s (%d bytes, %s)", recording.id, destination, stored.key,
                     stored.size, stored.checksum)  # fmt: skip
    except Exception as error:
        # A vendor library's message may quote a URL or a header; only its class is safe to keep.
        kind = error.kind if isinstance(error, StoreError) else type(error).__name__
        metrics.upload_attempted(target, succeeded=False)
        await _failed(db, recording.id, destination, f"{destination}: {kind}")
        raise DeliveryFailed(destination, kind) from None
    finally:
        await store.close()
    await _finished(db, recording.id, destination)
    metrics.upload_attempted(target, succeeded=True)


async def _begin(db: Database, recording_id: str, destination: str) -> dict[str, Any]:
    """Count an attempt for this destination; what it confirmed before."""
    now = utcnow()
    async with db.write() as session:
        row = await _row(session, recording_id, destination)
        if row is None:
            row = StoreUpload(
                recording_id=recording_id, destination=destination, status=PENDING, attempts=0, confirmed={},
                created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(row)
        row.attempts += 1
        row.status = PENDING
        row.updated_at = now
        return dict(row.confirmed)


async def _confirm(db: Database, recording_id: str, destination: str, name: str, stored: StoredObject) -> Any:
    entry = {"key": stored.key, "size": stored.size, "checksum": stored.checksum}
    async with db.write() as session:
        row = await _row(session, recording_id, destination)
        assert row is not None
        row.confirmed = {**row.confirmed, name: entry}
        row.updated_at = utcnow()
    return entry


async def _failed(db: Database, recording_id: str, destination: str, error: str) -> None:
    async with db.write() as session:
        row = await _row(session, recording_id, destination)
        if row is not None:
            row.status, row.last_error, row.updated_at = FAILED, error, utcnow()


async def _finished(db: Database, recording_id: str, destination: str) -> None:
    async with db.write() as session:
        row = await _row(session, recording_id, destination)
        if row is not None:
            row.status, row.last_error, row.updated_at = CONFIRMED, None, utcnow()


async def _row(session: AsyncSession, recording_id: str, destination: str) -> StoreUpload | None:
    found = await session.execute(
        select(StoreUpload).where(StoreUpload.recording_id == recording_id, StoreUpload.destination == destination)
    )
    return found.scalar_one_or_none()
