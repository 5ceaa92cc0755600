"""One track recording: every selected participant's tracks, each in its own file as received
(recordings.md §11; design.md "A recording's path", track.py).

The recorder reads the room through a `MediaSource` and never joins it, so it is no participant. For each
published track of a selected peer (audio; video too when the layer's `media_kind` is "video") it reads the
encoded packets (`MediaSource.packets`, which starts video at a keyframe it asks the sender for) and writes
them into one file per track (`passthrough.PassthroughFile`): a participant with two tabs gives two files,
one who leaves and rejoins gives one file per connection, one who joins later is recorded from their join.
A file is closed when its track ends (its peer left) or the recording stops. Nothing is decoded or encoded.

When it stops it writes the manifest (`manifest.py`): each file's participant and its offset from the
recording's time 0, which is the instant the recorder attached (`started_time`).

Threads: the event loop reads packets and queues them per track; one worker thread owns every file and
writes the queues out a few times a second, so the media plane sharing the loop never waits on a disk, and
the cost is one hand-off per interval, not one per packet.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recordkit.meetings.media.events import ParticipantInfo, TrackAdded, TrackInfo
from recordkit.meetings.media.receiving import EncodedFrame
from recordkit.meetings.media.source import EventStream, MediaSource, UnknownTrack
from recordkit.meetings.media.timing import media_now_s
from recordkit.recorder.capture import Finished
from recordkit.recorder.composite import Ending, RecorderHooks, RecorderSettings
from recordkit.recorder.manifest import Manifest, ManifestFile, manifest_file_name, wall_time_iso, write_manifest
from recordkit.recorder.passthrough import PassthroughFile, codec_name, muxing
from recordkit.recorder.spool import DiskFloor
from recordkit.recorder.tasks import RecorderTasks
from recordkit.recording import config as rconfig

log = logging.getLogger(__name__)

# A track recording never outlives 24 h (recordings.md §7.4; the same cap as composite recordings).
MAX_TRACK_SECONDS = 86_400.0
# How often the worker thread writes the queued packets out: often enough that little waits in memory.
WRITE_INTERVAL_S = 0.2


@dataclass(frozen=True)
class TrackPlan:
    """What one track recording records, from its stored configuration (validated at start, §6.4)."""

    layer_name: str
    file_name_prefix: str
    media_kinds: frozenset[str]
    user_ids: frozenset[str] | None  # None: everyone
    max_duration_s: float = MAX_TRACK_SECONDS

    @classmethod
    def from_config(cls, config: dict[str, Any], max_duration_s: float = MAX_TRACK_SECONDS) -> TrackPlan:
        layers = config.get("layers") or {"default": {}}
        layer_name, layer = next(iter(layers.items()))  # at most one layer (§6.4)
        media_kind = layer.get("media_kind", "audio")
        user_ids = config.get("user_ids")
        return cls(
            layer_name=layer_name,
            file_name_prefix=layer.get("file_name_prefix", "default"),
            # A video layer records each peer's video beside its audio.
            media_kinds=frozenset({"audio", "video"} if media_kind == "video" else {"audio"}),
            user_ids=frozenset(user_ids) if user_ids else None,
            max_duration_s=max_duration_s,
        )

    def selects(self, participant: ParticipantInfo) -> bool:
        """Whether the participant is recorded: everyone, or those whose id or custom id was asked for (§11.1)."""
        if self.user_ids is None:
            return True
        return participant.participant_id in self.user_ids or participant.custom_participant_id in self.user_ids

    def records(self, track: TrackInfo) -> bool:
        """Whether this track gets a file."""
        return track.kind in self.media_kinds and self.selects(track.participant)


@dataclass(eq=False)
class _Track:
    """One recorded track: what the event loop queued for the worker thread, and the worker's file.

    The loop only appends to `pending` and sets `ended` after its last append; the worker only pops and
    owns `file`. (Deque appends and pops are safe between two threads.)
    """

    info: TrackInfo
    pending: deque[EncodedFrame] = field(default_factory=deque)
    ended: bool = False
    file: PassthroughFile | None = None
    file_name: str | None = None
    done: bool = False  # closed (or given up on) by the worker


class TrackRecorder:
    """Records the selected participants' tracks until `finish()` is called or 24 h have passed."""

    def __init__(
        self,
        plan: TrackPlan,
        source: MediaSource,
        spool: Path,
        hooks: RecorderHooks,
        *,
        recording_id: str,
        meeting_id: str,
        session_id: str | None,
        settings: RecorderSettings,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.source = source
        self.spool = spool
        self.hooks = hooks
        self.recording_id = recording_id
        self.meeting_id = meeting_id
        self.session_id = session_id
        self.began_wall_s: float | None = None
        self.files: list[ManifestFile] = []  # the closed files (the manifest lists them by offset)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="track-recorder")
        self._tracks: list[_Track] = []
        self._tasks = RecorderTasks("track recorder", self._vital_work_failed)
        self._finished: asyncio.Task[Finished] | None = None
        self._attached_told: asyncio.Task[Any] | None = None
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Record until stopped: by `finish()`, or by itself (then `hooks.ended_by_itself` has been called)."""
        if self._finished is not None:
            return  # stopped before it attached: nothing to start
        await self._in_worker(lambda: self.spool.mkdir(parents=True, exist_ok=True))
        if self._finished is not None:
            return
        events = self.source.events()  # subscribed before time 0: nobody present is missed
        # Time 0 on the millisecond, so the manifest's offsets count from exactly the `started_time` shown.
        self.began_wall_s = math.floor(media_now_s() * 1000) / 1000
        self._attached_told = self._tasks.hook(self.hooks.first_packet(self.began_wall_s))
        self._tasks.start(self._follow_room(events), vital=True)
        self._tasks.start(self._write_loop(), vital=True)
        self._tasks.start(self._cap())
        self._tasks.start(self._stop_at_disk_floor())
        await self._stop.wait()
        await self._tasks.wait_for_hooks()

    def pause(self, at_wall_s: float) -> None:
        """Never called: the service refuses pause for track recordings (§6.5)."""

    def resume(self, at_wall_s: float) -> None:
        """Never called: the service refuses resume for track recordings (§6.5)."""

    async def finish(self, at_wall_s: float | None = None) -> Finished:
        """Stop recording (now, or at `at_wall_s` if that is earlier), close every file and write the manifest.
        Never touches the database. `file_size` is the sum of all files, manifest included."""
        if self._finished is None:
            now_s = math.floor(media_now_s() * 1000) / 1000
            self._finished = asyncio.create_task(self._finalise(now_s if at_wall_s is None else min(at_wall_s, now_s)))
        return await asyncio.shield(self._finished)

    @property
    def captured_media(self) -> bool:
        return bool(self.files)

    # --- the event loop side -------------------------------------------------------------------------------

    async def _follow_room(self, events: EventStream) -> None:
        async with events:
            async for event in events:
                if isinstance(event, TrackAdded) and self.plan.records(event.track):
                    if muxing(event.track.codec) is None:
                        log.warning("recording %s: %s cannot be stored as is; not recorded", self.recording_id,
                                    event.track.codec)  # fmt: skip
                        continue
                    track = _Track(event.track)
                    self._tracks.append(track)
                    self._tasks.start(self._read(track))
                # Leaving needs nothing here: a peer's tracks end when it goes, and so do their readers.

    async def _read(self, track: _Track) -> None:
        try:
            reader = self.source.packets(track.info.track_id)
        except UnknownTrack:
            track.ended = True  # gone before we got to it
            return
        try:
            async for frame in reader:
                track.pending.append(frame)
        finally:
            reader.close()
            track.ended = True

    async def _write_loop(self) -> None:
        assert self.began_wall_s is not None
        cap_wall_s = self.began_wall_s + self.plan.max_duration_s  # nothing past the cap, even before it stops us
        while True:
            await asyncio.sleep(WRITE_INTERVAL_S)
            await self._in_worker(self._write_pending, cap_wall_s)

    async def _cap(self) -> None:
        assert self.began_wall_s is not None
        await asyncio.sleep(max(0.0, self.began_wall_s + self.plan.max_duration_s - media_now_s()))
        self._tasks.hook(self._end_by_itself("max_seconds"))

    async def _stop_at_disk_floor(self) -> None:
        await DiskFloor(self.spool, self.settings.min_free_bytes).wait_until_reached()
        self._tasks.hook(self._end_by_itself("error"))

    async def _end_by_itself(self, reason: str) -> None:
        assert self.began_wall_s is not None
        limit_wall_s = self.began_wall_s + self.plan.max_duration_s if reason == "max_seconds" else None
        finished = await self.finish(limit_wall_s)
        if self._attached_told is not None:
            # RECORDING must be recorded before the end is, or the end would find the recording INVOKED.
            await asyncio.gather(self._attached_told, return_exceptions=True)
        await self.hooks.ended_by_itself(Ending(reason, finished, finished.captured_media))

    async def _finalise(self, stop_wall_s: float) -> Finished:
        await self._tasks.cancel_work()
        size: int | None = None
        try:
            for track in self._tracks:
                track.ended = True
            await self._in_worker(self._write_pending, stop_wall_s)
            if self.files:
                size = await self._in_worker(self._write_manifest, stop_wall_s)
            else:
                await self._in_worker(self._remove_empty_spool)
        except Exception:
            # The files closed so far are still good; a stop must still answer.
            log.exception("recording %s: finishing the track files failed", self.recording_id)
        finally:
            await self.source.close()
            self._executor.shutdown(wait=False)
            self._stop.set()
        ended_at = datetime.fromtimestamp(stop_wall_s, UTC).replace(tzinfo=None)
        return Finished(size, ended_at, captured_media=bool(self.files))

    def _vital_work_failed(self) -> None:
        if self._finished is None:
            self._tasks.hook(self._end_by_itself("error"))

    async def _in_worker(self, work: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    # --- the worker thread side ---------------------------------------------------------------------------

    def _write_pending(self, until_wall_s: float) -> None:
        """Write every queued packet sent no later than `until_wall_s`; close ended tracks."""
        for track in list(self._tracks):
            if track.done:
                continue
            ended = track.ended  # read before draining: packets queued before the end are all there
            while track.pending:
                frame = track.pending.popleft()
                if frame.wall_time_s >= until_wall_s:
                    track.pending.clear()  # sent after the stop instant: not part of the recording
                    break
                self._write(track, frame)
                if track.done:
                    break
            if ended and not track.pending:
                self._close(track)

    def _write(self, track: _Track, frame: EncodedFrame) -> None:
        assert self.began_wall_s is not None
        if track.file is None and track.info.kind == "audio" and frame.wall_time_s < self.began_wall_s:
            # Sent before time 0 (in flight when the recorder attached): not part of the recording, and no
            # file may start before its recording does. (Video is kept: it must start at its keyframe.)
            return
        try:
            if track.file is None:
                track.file = self._open(track, frame)
            track.file.write(frame)
        except Exception:
            # One bad track must not cost the others their files: give this one up, keep what it wrote.
            log.exception("recording %s: writing track %s failed", self.recording_id, track.info.track_id)
            track.pending.clear()
            self._close(track)

    def _open(self, track: _Track, first: EncodedFrame) -> PassthroughFile:
        info = track.info
        found = muxing(info.codec)
        assert found is not None
        track.file_name = rconfig.track_file_name(
            self.plan.file_name_prefix,
            info.participant.participant_id,
            info.participant.peer_id,
            info.kind,
            math.floor(first.wall_time_s * 1000),
            found.extension,
        )
        return PassthroughFile(self.spool / track.file_name, info.codec, first)

    def _close(self, track: _Track) -> None:
        track.done = True
        written, track.file = track.file, None
        if written is None or track.file_name is None:
            return
        try:
            size = written.close()
        except Exception:
            log.exception("recording %s: closing %s failed", self.recording_id, track.file_name)
            if not written.path.exists():
                return
            size = written.path.stat().st_size
        assert self.began_wall_s is not None
        participant = track.info.participant
        self.files.append(
            ManifestFile(
                file_name=track.file_name,
                layer_name=self.plan.layer_name,
                media_kind=track.info.kind,
                codec=codec_name(track.info.codec),
                user_id=participant.participant_id,
                custom_participant_id=participant.custom_participant_id,
                name=participant.name,
                peer_id=participant.peer_id,
                offset_s=round(written.origin_wall_s - self.began_wall_s, 6),
                first_sample_time=wall_time_iso(written.origin_wall_s),
                last_sample_time=wall_time_iso(written.origin_wall_s + written.duration_s),
                duration_s=round(written.duration_s, 6),
                file_size=size,
            )
        )

    def _write_manifest(self, stop_wall_s: float) -> int:
        """Write the manifest beside the files; the size of everything written, manifest included."""
        assert self.began_wall_s is not None
        manifest = Manifest(
            recording_id=self.recording_id,
            meeting_id=self.meeting_id,
            session_id=self.session_id,
            started_time=wall_time_iso(self.began_wall_s),
            stopped_time=wall_time_iso(stop_wall_s),
            files=tuple(sorted(self.files, key=lambda entry: (entry.offset_s or 0.0, entry.file_name))),
        )
        manifest_size = write_manifest(self.spool / manifest_file_name(self.recording_id), manifest)
        return manifest_size + sum(entry.file_size for entry in self.files)

    def _remove_empty_spool(self) -> None:
        """Nothing was captured, so nothing will be uploaded: leave no empty folder behind."""
        try:
            self.spool.rmdir()
        except OSError:
            pass  # not empty (or already gone): the upload or an operator deals with it
