"""The `upload` job (recordings.md §7.4, §10): move a finished recording's files from the spool into
the built-in bucket, check them, and hand out signed links that expire 7 days later."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recordkit.clock import utcnow
from recordkit.db.models import Recording
from recordkit.jobs.dispatcher import Job
from recordkit.recording import config as rconfig
from recordkit.recording.lifecycle import Status
from recordkit.recording.service import Recordings, UploadOutcome
from recordkit.recording.spool import spool_dir
from recordkit.storage.bucket import LocalBucket

log = logging.getLogger(__name__)

LINK_LIFETIME = timedelta(days=7)


class Uploads:
    """Runs `upload` jobs for composite recordings."""

    def __init__(self, recordings: Recordings, bucket: LocalBucket, data_dir: Path) -> None:
        self.recordings = recordings
        self.bucket = bucket
        self.data_dir = data_dir

    async def run(self, job: Job) -> None:
        """Upload one recording; a recording no longer UPLOADING is left alone (a retry after restart)."""
        recording = await self.recordings.get(job.recording_id)
        if recording is None or recording.status != Status.UPLOADING.value:
            return
        outcome = await asyncio.to_thread(self._store, recording)
        await self.recordings.finish_upload(recording.id, outcome)

    def _store(self, recording: Recording) -> UploadOutcome:
        names = [recording.output_file_name]
        audio_name = rconfig.audio_file_name(recording.config, recording.output_file_name)
        if audio_name:
            names.append(audio_name)
        sizes = {name: self._into_bucket(recording.id, name) for name in names}
        if sizes[recording.output_file_name] is None:
            log.error("recording %s: its file %s is missing", recording.id, recording.output_file_name)
            return UploadOutcome(False, recording.file_size, None, None, None)
        completed = utcnow()
        expires_s = int(completed.replace(tzinfo=UTC).timestamp()) + int(LINK_LIFETIME.total_seconds())
        main_url = self.bucket.signed_url(recording.id, recording.output_file_name, expires_s)
        audio_url = main_url if _is_audio_only(recording) else None
        if audio_name and sizes[audio_name] is not None:
            audio_url = self.bucket.signed_url(recording.id, audio_name, expires_s)
        # External stores (S3, Azure, GCS, SFTP) are not wired yet: an honest ERRORED keeps the built-in copy.
        succeeded = recording.storage_config is None
        if not succeeded:
            log.error(
                "recording %s: external storage %s is not supported yet",
                recording.id,
                recording.storage_config.get("type"),
            )
        return UploadOutcome(
            succeeded=succeeded,
            file_size=sizes[recording.output_file_name],
            download_url=main_url,
            audio_download_url=audio_url,
            download_url_expiry=datetime.fromtimestamp(expires_s, UTC).replace(tzinfo=None),
        )

    def _into_bucket(self, recording_id: str, name: str) -> int | None:
        """Move one file from the spool to the bucket (a rename on one disk); its size, or None if absent."""
        target = self.bucket.path(recording_id, name)
        assert target is not None
        source = spool_dir(self.data_dir, recording_id) / name
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            size = source.stat().st_size
            tmp = target.with_name(target.name + ".part")
            try:
                os.replace(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
            if tmp.stat().st_size != size:
                raise OSError(f"{name}: {tmp.stat().st_size} bytes stored, {size} expected")
            os.replace(tmp, target)
            if source.exists():
                source.unlink()
        return target.stat().st_size if target.exists() else None


def _is_audio_only(recording: Recording) -> bool:
    return not recording.config["video_config"]["export_file"]
