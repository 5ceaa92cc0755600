"""The `upload` job (recordings.md §7.4, §10): move a finished recording's files from the spool into the
built-in bucket (unless it is disabled), deliver them to the recording's external store when it has one
(`delivery.py`), and hand out signed links that expire 7 days later. UPLOADED once every destination confirmed
every file; a destination that keeps failing ends it ERRORED, the built-in copy kept and linked."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from recordkit.clock import to_wire, utcnow
from recordkit.db.models import Participant, Recording
from recordkit.jobs.kinds import JobKind, RetryPolicy, describe
from recordkit.metrics import BUILTIN
from recordkit.recorder.manifest import (
    Manifest,
    download_urls,
    manifest_file_name,
    read_manifest,
    recovered_files,
    with_file_details,
    write_manifest,
)
from recordkit.recorder.plan import OutputPlan
from recordkit.recorder.remux import media_duration_s
from recordkit.recorder.spool import spool_dir
from recordkit.recording import config as rconfig
from recordkit.recording.delivery import DeliveryFailed, deliver
from recordkit.recording.lifecycle import Kind, Status
from recordkit.recording.reports import CaptureReports, UploadOutcome
from recordkit.recording.takeover import join_parts
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
    placed = await _place(context, files, recording, people)
    if placed.outcome.succeeded and recording.storage_config is not None:
        db, metrics = context.reports.db, context.metrics
        await deliver(db, context.secrets, context.upload_settings, recording, placed.files, metrics)
        if not builtin_enabled(recording):
            # The external store confirmed every file: recordkit keeps no copy (§10.3).
            await asyncio.to_thread(_remove, [path for _, path in placed.files])
    await reports.finish_upload(recording.id, placed.outcome)


async def _place(context: WorkContext, files: RecordingFiles, recording: Recording, people: People) -> Placed:
    """`files.place` off the event loop, counted as an upload to the built-in bucket when that is enabled."""
    if not builtin_enabled(recording):
        return await asyncio.to_thread(files.place, recording, people)
    try:
        placed = await asyncio.to_thread(files.place, recording, people)
    except Exception:
        context.metrics.upload_attempted(BUILTIN, succeeded=False)
        raise
    context.metrics.upload_stored(BUILTIN, files.moved_bytes)
    context.metrics.upload_attempted(BUILTIN, placed.outcome.succeeded)
    return placed


async def upload_gave_up(context: WorkContext, recording_id: str, error: BaseException) -> None:
    """The upload kept failing: ERRORED with the step and the error class named (§7.4). The built-in copy, when
    it was made, stays and keeps its links (§10.3); with the bucket disabled the files stay in the spool."""
    if isinstance(error, DeliveryFailed):
        recording = await context.reports.get(recording_id)
        if recording is not None and recording.status == Status.UPLOADING.value and builtin_enabled(recording):
            files = RecordingFiles(context.bucket, context.settings.data_dir, context.settings.link_lifetime)
            people = await meeting_people(context.reports, recording.meeting_id)
            placed = await asyncio.to_thread(files.place, recording, people)
            await context.reports.finish_upload(
                recording_id, replace(placed.outcome, succeeded=False, failure=str(error))
            )
            return
        await context.reports.upload_gave_up(recording_id, str(error))
        return
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


@dataclass(frozen=True)
class Placed:
    """A recording's files put where they stay on this machine: the outcome for the built-in bucket (its links,
    or none when it is disabled) and each file's name and local path, for the external stores."""

    outcome: UploadOutcome
    files: list[tuple[str, Path]]


class RecordingFiles:
    """A recording's finished files moved from the spool into the built-in bucket with their signed links — or,
    with the bucket disabled (§10.3), left in the spool for the external store and linked nowhere."""

    def __init__(self, bucket: LocalBucket, data_dir: Path, link_lifetime: timedelta) -> None:
        self.bucket = bucket
        self.data_dir = data_dir
        self.link_lifetime = link_lifetime
        # What this placement moved into the bucket (a retry finds the files there already).
        self.moved_bytes = 0

    def place(self, recording: Recording, people: People) -> Placed:
        if recording.type == Kind.TRACK.value:
            return self._place_tracks(recording, people)
        # Continued on other workers (takeover.py): its segments become one file first.
        join_parts(
            spool_dir(self.data_dir, recording.id),
            OutputPlan.from_recording(recording.config, recording.output_file_name),
        )
        builtin = builtin_enabled(recording)
        names = [recording.output_file_name]
        audio_name = rconfig.audio_file_name(recording.config, recording.output_file_name)
        if audio_name:
            names.append(audio_name)
        sizes = {name: self._place(recording.id, name, builtin) for name in names}
        files = self._local(recording.id, [name for name in names if sizes[name] is not None], builtin)
        if sizes[recording.output_file_name] is None:
            log.error("recording %s: its file %s is missing", recording.id, recording.output_file_name)
            failure = f"upload: the file {recording.output_file_name} is missing"
            return Placed(UploadOutcome(False, recording.file_size, None, None, None, failure), files)
        if not builtin:
            return Placed(UploadOutcome(True, sizes[recording.output_file_name], None, None, None), files)
        expires_s = self._links_expire_s()
        main_url = self.bucket.signed_url(recording.id, recording.output_file_name, expires_s)
        audio_url = main_url if _is_audio_only(recording) else None
        if audio_name and sizes[audio_name] is not None:
            audio_url = self.bucket.signed_url(recording.id, audio_name, expires_s)
        outcome = UploadOutcome(
            succeeded=True,
            file_size=sizes[recording.output_file_name],
            download_url=main_url,
            audio_download_url=audio_url,
            download_url_expiry=datetime.fromtimestamp(expires_s, UTC).replace(tzinfo=None),
        )
        return Placed(outcome, files)

    def _place_tracks(self, recording: Recording, people: People) -> Placed:
        """A track recording's files and manifest; `download_url` grouped per layer (§11.3)."""
        rid = recording.id
        builtin = builtin_enabled(recording)
        name = manifest_file_name(rid)
        spool = spool_dir(self.data_dir, rid)
        stored = self.bucket.path(rid, name)
        # A retry after a restart may find the manifest already moved; a crash may have left none at all.
        manifest = read_manifest(spool / name) or (read_manifest(stored) if stored is not None else None)
        if manifest is None:
            manifest = _recovered_manifest(recording, spool, people)
            write_manifest(spool / name, manifest)
        sizes = {entry.file_name: self._place(rid, entry.file_name, builtin) for entry in manifest.files}
        manifest_size = self._place(rid, name, builtin)
        present = [file_name for file_name, size in sizes.items() if size is not None]
        local = self._local(rid, [*present, name] if manifest_size is not None else present, builtin)
        missing = sorted(file_name for file_name, size in sizes.items() if size is None)
        if missing:
            log.error("recording %s: its track files %s are missing", rid, ", ".join(missing))
        failure = f"upload: the track files {', '.join(missing)} are missing" if missing else None
        if manifest_size is None or len(missing) == len(sizes):
            outcome = UploadOutcome(False, recording.file_size, None, None, None, failure or "upload: no manifest")
            return Placed(outcome, local)
        files = [
            replace(entry, file_size=size) for entry in manifest.files if (size := sizes[entry.file_name]) is not None
        ]
        total = manifest_size + sum(entry.file_size for entry in files)
        if not builtin:
            return Placed(UploadOutcome(not missing, total, None, None, None, failure), local)
        expires_s = self._links_expire_s()

        def link(file_name: str) -> str:
            return self.bucket.signed_url(rid, file_name, expires_s)

        manifest_link = {"file_name": name, "download_url": link(name), "file_size": manifest_size}
        outcome = UploadOutcome(
            succeeded=not missing,  # a lost file is reported, never hidden behind UPLOADED
            file_size=total,
            download_url=download_urls(files, link, manifest_link),
            audio_download_url=None,
            download_url_expiry=datetime.fromtimestamp(expires_s, UTC).replace(tzinfo=None),
            failure=failure,
        )
        return Placed(outcome, local)

    def _place(self, recording_id: str, name: str, builtin: bool) -> int | None:
        """Into the bucket when it is enabled, else left in the spool; the file's size, or None if absent."""
        if builtin:
            return self._into_bucket(recording_id, name)
        source = spool_dir(self.data_dir, recording_id) / name
        return source.stat().st_size if source.exists() else None

    def _local(self, recording_id: str, names: list[str], builtin: bool) -> list[tuple[str, Path]]:
        if not builtin:
            return [(name, spool_dir(self.data_dir, recording_id) / name) for name in names]
        return [(name, path) for name in names if (path := self.bucket.path(recording_id, name)) is not None]

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
                # Another disk: the bucket's own verified copy (through the same `.part`), then the spool's goes.
                self.bucket.copy_in(source, f"{recording_id}/{name}")
            else:
                if part.stat().st_size != size:
                    raise OSError(f"{name}: {part.stat().st_size} bytes stored, {size} expected")
                os.replace(part, target)
            source.unlink(missing_ok=True)
            self.moved_bytes += size
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


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def builtin_enabled(recording: Recording) -> bool:
    """Whether the built-in bucket keeps a copy (`realtimekit_bucket_config.enabled`, true unless set false)."""
    return bool(recording.config.get("realtimekit_bucket_config", {}).get("enabled", True))


def _is_audio_only(recording: Recording) -> bool:
    return not recording.config["video_config"]["export_file"]
