"""The `upload` job (recordings.md §7.4, §10): move a finished recording's files from the spool into
the built-in bucket, check them, and hand out signed links that expire 7 days later."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from recordkit.clock import to_wire, utcnow
from recordkit.db.models import Participant, Recording
from recordkit.jobs.kinds import JobKind, RetryPolicy, describe
from recordkit.recorder.manifest import (
    Manifest,
    download_urls,
    manifest_file_name,
    read_manifest,
    recovered_files,
    with_file_details,
    write_manifest,
)
from recordkit.recorder.remux import media_duration_s
from recordkit.recorder.spool import spool_dir
from recordkit.recording import config as rconfig
from recordkit.recording.lifecycle import Kind, Status
from recordkit.recording.reports import CaptureReports, UploadOutcome
from recordkit.recording.work import WorkContext
from recordkit.storage.bucket import LocalBucket

log = logging.getLogger(__name__)

# A meeting's participants by id: (custom_participant_id, name).
People = dict[str, tuple[str, str | None]]


async def upload(context: WorkContext, recording_id: str) -> None:
    """Upload one recording; a recording no longer UPLOADING is left alone (a retry of a job that got there)."""
    reports = context.reports
    recording = await reports.get(recording_id)
    if recording is None or recording.status != Status.UPLOADING.value:
        return
    people = await meeting_people(reports, recording.meeting_id) if recording.type == Kind.TRACK.value else {}
    files = RecordingFiles(context.bucket, context.settings.data_dir, context.settings.link_lifetime)
    outcome = await asyncio.to_thread(files.store, recording, people)
    await reports.finish_upload(recording.id, outcome)


async def upload_gave_up(context: WorkContext, recording_id: str, error: BaseException) -> None:
    """The upload kept failing: ERRORED with the step and the error class named (§7.4); what reached the bucket
    stays there."""
    await context.reports.upload_gave_up(recording_id, f"upload to the built-in bucket failed: {describe(error)}")


# §10.4: uploads are retried at least 5 times over at least 30 s: here 2, 4, 8, 16 and 32 s (±20 %).
UPLOAD = JobKind(
    name="upload",
    queue="upload",
    policy=RetryPolicy(attempts=6, first_delay_s=2.0, max_delay_s=60.0),
    run=upload,
    gave_up=upload_gave_up,
)


async def meeting_people(reports: CaptureReports, meeting_id: str) -> People:
    """The meeting's participants, for a track manifest that has to be rebuilt after a crash."""
    async with reports.db.read() as session:
        rows = await session.execute(
            select(Participant.id, Participant.custom_participant_id, Participant.name).where(
                Participant.meeting_id == meeting_id
            )
        )
        return {participant_id: (custom_id, name) for participant_id, custom_id, name in rows}


class RecordingFiles:
    """A recording's files moved from the spool into the built-in bucket, with their signed links."""

    def __init__(self, bucket: LocalBucket, data_dir: Path, link_lifetime: timedelta) -> None:
        self.bucket = bucket
        self.data_dir = data_dir
        self.link_lifetime = link_lifetime

    def store(self, recording: Recording, people: People) -> UploadOutcome:
        if recording.type == Kind.TRACK.value:
            return self._store_tracks(recording, people)
        names = [recording.output_file_name]
        audio_name = rconfig.audio_file_name(recording.config, recording.output_file_name)
        if audio_name:
            names.append(audio_name)
        sizes = {name: self._into_bucket(recording.id, name) for name in names}
        if sizes[recording.output_file_name] is None:
            log.error("recording %s: its file %s is missing", recording.id, recording.output_file_name)
            failure = f"upload: the file {recording.output_file_name} is missing"
            return UploadOutcome(False, recording.file_size, None, None, None, failure)
        expires_s = self._links_expire_s()
        main_url = self.bucket.signed_url(recording.id, recording.output_file_name, expires_s)
        audio_url = main_url if _is_audio_only(recording) else None
        if audio_name and sizes[audio_name] is not None:
            audio_url = self.bucket.signed_url(recording.id, audio_name, expires_s)
        # External stores (S3, Azure, GCS, SFTP) are not wired yet: an honest ERRORED keeps the built-in copy.
        failure = None
        if recording.storage_config is not None:
            store_type = recording.storage_config.get("type")
            log.error("recording %s: external storage %s is not supported yet", recording.id, store_type)
            failure = f"upload: external storage {store_type} is not supported yet"
        return UploadOutcome(
            succeeded=failure is None,
            file_size=sizes[recording.output_file_name],
            download_url=main_url,
            audio_download_url=audio_url,
            download_url_expiry=datetime.fromtimestamp(expires_s, UTC).replace(tzinfo=None),
            failure=failure,
        )

    def _store_tracks(self, recording: Recording, people: People) -> UploadOutcome:
        """A track recording's files and manifest into the bucket; `download_url` grouped per layer (§11.3)."""
        rid = recording.id
        name = manifest_file_name(rid)
        spool = spool_dir(self.data_dir, rid)
        stored = self.bucket.path(rid, name)
        # A retry after a restart may find the manifest already moved; a crash may have left none at all.
        manifest = read_manifest(spool / name) or (read_manifest(stored) if stored is not None else None)
        if manifest is None:
            manifest = _recovered_manifest(recording, spool, people)
            write_manifest(spool / name, manifest)
        sizes = {entry.file_name: self._into_bucket(rid, entry.file_name) for entry in manifest.files}
        manifest_size = self._into_bucket(rid, name)
        missing = sorted(file_name for file_name, size in sizes.items() if size is None)
        if missing:
            log.error("recording %s: its track files %s are missing", rid, ", ".join(missing))
        failure = f"upload: the track files {', '.join(missing)} are missing" if missing else None
        if manifest_size is None or len(missing) == len(sizes):
            return UploadOutcome(False, recording.file_size, None, None, None, failure or "upload: no manifest")
        expires_s = self._links_expire_s()

        def link(file_name: str) -> str:
            return self.bucket.signed_url(rid, file_name, expires_s)

        files = [
            replace(entry, file_size=size) for entry in manifest.files if (size := sizes[entry.file_name]) is not None
        ]
        manifest_link = {"file_name": name, "download_url": link(name), "file_size": manifest_size}
        return UploadOutcome(
            succeeded=not missing,  # a lost file is reported, never hidden behind UPLOADED
            file_size=manifest_size + sum(entry.file_size for entry in files),
            download_url=download_urls(files, link, manifest_link),
            audio_download_url=None,
            download_url_expiry=datetime.fromtimestamp(expires_s, UTC).replace(tzinfo=None),
            failure=failure,
        )

    def _links_expire_s(self) -> int:
        """When links made now expire (Unix seconds): the upload's completion, whole seconds, plus their lifetime."""
        return int(utcnow().replace(tzinfo=UTC).timestamp()) + int(self.link_lifetime.total_seconds())

    def _into_bucket(self, recording_id: str, name: str) -> int | None:
        """Move one file from the spool to the bucket (a rename on one disk); its size, or None if absent."""
        target = self.bucket.path(recording_id, name)
        assert target is not None
        source = spool_dir(self.data_dir, recording_id) / name
        part = target.with_name(target.name + ".part")
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            size = source.stat().st_size
            try:
                os.replace(source, part)
            except OSError:
                shutil.copyfile(source, part)
            if part.stat().st_size != size:
                raise OSError(f"{name}: {part.stat().st_size} bytes stored, {size} expected")
            os.replace(part, target)
            if source.exists():
                source.unlink()
        elif part.exists():
            # The process died between the two renames: the spool file had been renamed whole (a copy keeps its
            # source until it is done), so the move only needs its second half.
            os.replace(part, target)
        return target.stat().st_size if target.exists() else None


def _recovered_manifest(recording: Recording, spool: Path, people: People) -> Manifest:
    """The manifest of a track recording whose recorder died before writing one: from its files' names, their
    durations and the meeting's participants."""
    sizes = {path.name: path.stat().st_size for path in spool.glob("*") if path.is_file()} if spool.exists() else {}
    layer_name = next(iter(recording.config.get("layers") or {"default": {}}))
    started = recording.started_time
    started_wall_s = started.replace(tzinfo=UTC).timestamp() if started is not None else None
    return Manifest(
        recording_id=recording.id,
        meeting_id=recording.meeting_id,
        session_id=recording.session_id,
        started_time=to_wire(started) or "",
        stopped_time=to_wire(recording.stopped_time) or "",
        files=tuple(
            with_file_details(entry, people.get(entry.user_id), media_duration_s(spool / entry.file_name))
            for entry in recovered_files(sizes, layer_name, started_wall_s)
        ),
        recovered=True,
    )


def _is_audio_only(recording: Recording) -> bool:
    return not recording.config["video_config"]["export_file"]
