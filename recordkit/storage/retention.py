"""Retention of the built-in bucket (recordings.md §10.2): a recording's files are deleted when their download
links expire; the recording's row is kept forever, its `download_url` null from then on (§10.3)."""

from __future__ import annotations

import asyncio
import logging

from recordkit.clock import utcnow
from recordkit.recording.service import Recordings
from recordkit.storage.bucket import LocalBucket

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 600.0


async def delete_expired_files(bucket: LocalBucket, recordings: Recordings) -> list[str]:
    """Delete the bucket folders of recordings whose links have expired; their ids."""
    expired = await recordings.expired_among(await asyncio.to_thread(bucket.recording_ids), utcnow())
    for recording_id in expired:
        await asyncio.to_thread(bucket.delete_recording, recording_id)
        log.info("recording %s: its links expired, its files were deleted from the bucket", recording_id)
    return expired


async def delete_expired_forever(
    bucket: LocalBucket, recordings: Recordings, interval_s: float = SWEEP_INTERVAL_S
) -> None:
    """Every `interval_s`, delete what has expired; a failed sweep is logged and tried again next time."""
    while True:
        try:
            await delete_expired_files(bucket, recordings)
        except Exception:
            log.exception("the bucket's retention sweep failed")
        await asyncio.sleep(interval_s)
