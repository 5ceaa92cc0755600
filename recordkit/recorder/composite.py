"""One composite recording: a meeting's media, read from a `MediaSource`, laid out, mixed and encoded
into crash-safe spool files (recordings.md §7, §9; design.md "A recording's path").

Frames are placed by the time their senders captured them (`wall_time_s`), never by arrival: the output
renders the instant `jitter_s` in the past, by which time frames of every participant for that instant
have arrived. Audio and video of all participants share that one clock, so they stay in sync.

Threads: the event loop reads tracks and queues their encoded frames; one worker thread owns the decoders,
the compositor, the mixer and the encoders (PyAV must not be driven from two threads at once) and does all
the heavy work, so the media plane sharing the loop never waits on a codec.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recordkit.meetings.media.events import ParticipantJoined, ParticipantLeft, TrackAdded, TrackEnded
from recordkit.meetings.media.reading import TrackDecoder
from recordkit.meetings.media.source import MediaSource, UnknownTrack
from recordkit.meetings.media.timing import media_now_s
from recordkit.metrics import RecorderMeter
from recordkit.recorder.capture import Finished
from recordkit.recorder.encoder import AudioFileEncoder, CompositeEncoder
from recordkit.recorder.fetch import Network
from recordkit.recorder.inputs import Inputs
from recordkit.recorder.layout import Compositor
from recordkit.recorder.mixer import Mixer
from recordkit.recorder.outputs import Output
from recordkit.recorder.outputs.file import FileOutput
from recordkit.recorder.outputs.hls import HlsOutput, hls_dir, package_hls
from recordkit.recorder.outputs.rtmp import RtmpOutput
from recordkit.recorder.plan import SAMPLE_RATE, CompositeFile, OutputPlan
from recordkit.recorder.spool import DiskFloor
from recordkit.recorder.stages import StageClock
from recordkit.recorder.tasks import RecorderTasks
from recordkit.recorder.timeline import Timeline
from recordkit.recorder.watermark import Watermark, load_watermark

log = logging.getLogger(__name__)

# Ticks rendered at a time while the picture stands still (0.2 s at 30 fps): the output then runs up to that
# much further behind real time, which a recording does not notice.
STILL_TICKS = 6
# How late the output may fall before it renders every other frame, and before it jumps to the present.
CATCH_UP_S = 1.0
MAX_CATCH_UP_S = 2.0


@dataclass(frozen=True)
class RecorderSettings:
    """How a recorder waits (its jitter delay, how long an empty meeting is recorded) and what it may fetch."""

    jitter_s: float = 0.25
    # When capture starts with nobody present, the empty-meeting timer lasts at least this long (§7.4).
    empty_start_min_s: float = 60.0
    # Internal networks the watermark's fetch may reach all the same (RECORDKIT_FETCH_ALLOW).
    fetch_allow: tuple[Network, ...] = ()
    # Free space the spool's disk keeps; a recorder below it stops by itself (RECORDKIT_MIN_FREE_MB; 0: none).
    min_free_bytes: int = 0
    # How long an RTMP output waits before connecting again after its server dropped or refused it (§9.6).
    rtmp_retry_s: float = 5.0


@dataclass(frozen=True)
class Ending:
    """Why and when a recorder stopped by itself: `reason` is "max_seconds", "empty" or "error"."""

    reason: str
    finished: Finished
    wrote_media: bool


@dataclass
class RecorderHooks:
    """What the recorder tells the rest of recordkit. Neither hook is called while `finish()` runs."""

    first_packet: Callable[[float], Awaitable[None]]  # given the wall time of the file's time 0
    ended_by_itself: Callable[[Ending], Awaitable[None]]


class Recorder:
    """Records one meeting until `finish()` is called or it stops by itself (max_seconds, empty meeting)."""

    def __init__(
        self,
        plan: OutputPlan,
        source: MediaSource,
        spool: Path,
        hooks: RecorderHooks,
        *,
        keep_alive_s: float,
        meter: RecorderMeter,
        settings: RecorderSettings = RecorderSettings(),
    ) -> None:
        self.plan = plan
        self.source = source
        self.spool = spool
        self.hooks = hooks
        self.keep_alive_s = keep_alive_s
        self.settings = settings
        self.meter = meter
        self.first_packet_wall_s: float | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="recorder")
        self._inputs = Inputs()
        self._timeline: Timeline | None = None
        self._composite: CompositeEncoder | None = None
        self._audio_file: AudioFileEncoder | None = None
        self._compositor: Compositor | None = None
        self._mixer = Mixer(self._channels())
        self._stages = StageClock()  # the worker thread's CPU by stage (recordkit_recorder_cpu_seconds_total)
        self._watermark: Watermark | None = None
        self._watermark_shown: Watermark | None = None  # the one on the last frame written
        self._still = False  # the last tick wrote no picture (nothing changed), and nothing streams live
        self._audio_cursor_s = 0.0
        self._rendered_until_wall_s = 0.0
        self._failed_at_wall_s: float | None = None
        self._present: set[str] = set()
        self._anyone_joined = False
        self._empty_since_s: float | None = None
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._tasks = RecorderTasks("recorder", self._vital_work_failed)
        self._finished: asyncio.Task[Finished] | None = None
        self._first_packet_told: asyncio.Task[Any] | None = None
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Capture until stopped: by `finish()`, or by itself (then `hooks.ended_by_itself` has been called)."""
        if self._finished is not None:
            return  # stopped before it started: nothing to start
        await self._in_worker(self._open_outputs)
        if self._finished is not None:
            return  # stopped while opening: finish() has closed the outputs
        self._timeline = Timeline(media_now_s())
        if self.plan.composite is not None and self.plan.composite.video.watermark is not None:
            video = self.plan.composite.video
            self._tasks.start(self._load_watermark(video.watermark, video.width, video.height))
        self._tasks.start(self._follow_room(), vital=True)
        self._tasks.start(self._output_loop(), vital=True)
        self._tasks.start(self._stop_at_disk_floor())
        await self._stop.wait()
        await self._tasks.wait_for_hooks()

    def pause(self, at_wall_s: float) -> None:
        if self._timeline is not None:
            self._timeline.pause(self._not_rendered_yet(at_wall_s))

    def resume(self, at_wall_s: float) -> None:
        if self._timeline is not None:
            self._timeline.resume(self._not_rendered_yet(at_wall_s))

    def _not_rendered_yet(self, at_wall_s: float) -> float:
        """The instant itself when it is still ahead of the output (the usual case: the output runs a jitter
        delay behind), else the first one not yet rendered: what is in the file stays as it is."""
        return min(max(at_wall_s, self._rendered_until_wall_s), media_now_s())

    async def finish(self, at_wall_s: float | None = None) -> Finished:
        """Stop capturing (now, or at `at_wall_s` if that is earlier) and finalise the files.
        Never touches the database."""
        if self._finished is None:
            now_s = media_now_s()
            stop_wall_s = now_s if at_wall_s is None else min(at_wall_s, now_s)
            self._finished = asyncio.create_task(self._finalise(stop_wall_s))
        return await asyncio.shield(self._finished)

    @property
    def wrote_media(self) -> bool:
        return self.first_packet_wall_s is not None

    # --- the event loop side -------------------------------------------------------------------------------

    async def _follow_room(self) -> None:
        async with self.source.events() as events:
            async for event in events:
                match event:
                    case ParticipantJoined(participant=who):
                        self._present.add(who.peer_id)
                        self._anyone_joined = True
                        self._empty_since_s = None
                        name = who.name or who.custom_participant_id
                        self._inputs.changes.append(lambda peer=who.peer_id, name=name: self._seat(peer, name))
                    case ParticipantLeft(participant=who):
                        self._present.discard(who.peer_id)
                        if not self._present:
                            self._empty_since_s = media_now_s()
                        self._inputs.changes.append(lambda peer=who.peer_id: self._unseat(peer))
                    case TrackAdded(track=track):
                        reading = self._read(track.track_id, track.kind, track.participant.peer_id)
                        self._readers[track.track_id] = self._tasks.start(reading)
                    case TrackEnded(track=track):
                        reader = self._readers.pop(track.track_id, None)
                        if reader is not None:
                            reader.cancel()

    async def _read(self, track_id: str, kind: str, peer_id: str) -> None:
        if kind == "video" and self.plan.composite is None:
            return
        try:
            reader = self.source.packets(track_id)
        except UnknownTrack:
            return
        # While paused, frames are dropped as they come, undecoded: memory stays flat however long it lasts.
        assert self._timeline is not None
        reader.skip_when(self._timeline.in_pause)
        # Decoded in the worker thread when their time comes: one hand-off per output frame, not one per input frame.
        decoder = TrackDecoder(reader, asyncio.get_running_loop().call_soon_threadsafe, self.source.max_frame_size)
        queue = self._inputs.queue(kind, peer_id)
        try:
            async for encoded in reader:
                queue.append(encoded, decoder)
        finally:
            reader.close()
            if kind == "video":
                self._inputs.changes.append(lambda: self._video_ended(peer_id))

    async def _output_loop(self) -> None:
        assert self._timeline is not None
        interval_s = 1 / self._fps()
        start_s = self._timeline.start_wall_s
        tick = 0
        while not self._stop.is_set() and self._finished is None:
            # While the picture stands still, several ticks go to the worker thread at once: an audio-only or
            # empty meeting costs mostly wake-ups and hand-offs otherwise.
            batch = STILL_TICKS if self._still else 1
            walls = [start_s + (tick + index) * interval_s for index in range(batch)]
            if self.first_packet_wall_s is not None:
                # Never past max_seconds: the tick that reaches it is the batch's last.
                limit_s = self._timeline_start() + self.plan.max_seconds
                reaching = next((index for index, wall in enumerate(walls) if wall >= limit_s), None)
                walls = walls if reaching is None else walls[: reaching + 1]
            render_wall_s = walls[-1]
            tick += len(walls) - 1
            await _sleep_until(render_wall_s + self.settings.jitter_s)
            if self._finished is not None:
                return
            rendered_s = await self._in_worker(_timed, self._render_ticks, walls)
            behind_s = media_now_s() - self.settings.jitter_s - render_wall_s
            following = next_tick(tick, behind_s, interval_s)
            self.meter.frame(rendered_s, behind_s, following - tick - 1, self._frames_dropped(), self._stages.totals())
            if self.first_packet_wall_s is None and self._first_packet_written():
                self.first_packet_wall_s = media_now_s()
                self._first_packet_told = self._tasks.hook(self.hooks.first_packet(self._timeline_start()))
            ending = self._ending(render_wall_s)
            if ending is not None:
                self._tasks.hook(self._end_by_itself(ending))
                return
            tick = following

    def _frames_dropped(self) -> dict[str, int]:
        """Running totals: frames the input queues dropped, and frames the encoder found on a written slot."""
        encoder = self._composite.frames_dropped if self._composite is not None else 0
        return {"input": self._inputs.dropped, "encoder": encoder}

    def _ending(self, render_wall_s: float) -> str | None:
        if self.first_packet_wall_s is not None and render_wall_s - self._timeline_start() >= self.plan.max_seconds:
            return "max_seconds"
        if not self._present:
            since = self._empty_since_s if self._anyone_joined else self._timeline_start()
            wait_s = (
                self.keep_alive_s if self._anyone_joined else max(self.keep_alive_s, self.settings.empty_start_min_s)
            )
            if since is not None and media_now_s() - since >= wait_s:
                return "empty"
        return None

    async def _stop_at_disk_floor(self) -> None:
        await DiskFloor(self.spool, self.settings.min_free_bytes).wait_until_reached()
        self._tasks.hook(self._end_by_itself("error"))

    async def _end_by_itself(self, reason: str) -> None:
        limit_wall_s = self._timeline_start() + self.plan.max_seconds if reason == "max_seconds" else None
        finished = await self.finish(limit_wall_s)
        if self._first_packet_told is not None:
            # RECORDING must be recorded before the end is, or the end would find the recording INVOKED.
            await asyncio.gather(self._first_packet_told, return_exceptions=True)
        await self.hooks.ended_by_itself(Ending(reason, finished, self.wrote_media))

    async def _finalise(self, stop_wall_s: float) -> Finished:
        await self._tasks.cancel_work()
        try:
            if self._failed_at_wall_s is not None:
                # The outputs refused a write (a full disk, an encoder error): the file ends where they did.
                stop_wall_s = min(stop_wall_s, self._failed_at_wall_s)
            elif self._timeline is not None:
                # Render what was captured up to the stop instant, without waiting for stragglers.
                await self._render_last(stop_wall_s)
            size = await self._in_worker(self._close_outputs)
            ended_at = datetime.fromtimestamp(stop_wall_s, UTC).replace(tzinfo=None)
            return Finished(size, ended_at, captured_media=self._first_packet_written())
        finally:
            await self.source.close()
            self._executor.shutdown(wait=False)
            self._stop.set()

    async def _render_last(self, stop_wall_s: float) -> None:
        try:
            await self._in_worker(self._render_until, stop_wall_s)
        except Exception:
            # A stop must still close the file and answer; what was written so far stays.
            log.exception("the last frames before the stop could not be written")

    def _vital_work_failed(self) -> None:
        if self._failed_at_wall_s is None:
            self._failed_at_wall_s = self._rendered_until_wall_s
        if self._finished is None:
            self._tasks.hook(self._end_by_itself("error"))

    async def _load_watermark(self, spec: Any, width: int, height: int) -> None:
        self._watermark = await load_watermark(spec, width, height, self.settings.fetch_allow)

    async def _in_worker(self, work: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    def _timeline_start(self) -> float:
        assert self._timeline is not None
        return self._timeline.start_wall_s

    def _fps(self) -> int:
        return self.plan.composite.video.fps if self.plan.composite is not None else 50

    def _channels(self) -> int:
        audio = self.plan.composite.audio if self.plan.composite is not None else self.plan.audio_file.audio  # type: ignore[union-attr]
        return audio.channels

    # --- the worker thread side ---------------------------------------------------------------------------

    def _open_outputs(self) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        if self.plan.composite is not None:
            video = self.plan.composite.video
            self._compositor = Compositor(video.width, video.height)
            self._composite = CompositeEncoder(self.plan.composite, self._composite_outputs(self.plan.composite))
        if self.plan.audio_file is not None:
            self._audio_file = AudioFileEncoder(self.plan.audio_file, self.spool / self.plan.audio_file.name)

    def _composite_outputs(self, composite: CompositeFile) -> list[Output]:
        """Where the composite goes: its spool file, or the HLS segments of an interactive recording (§9.5);
        and the RTMP stream when one is asked for (§9.6)."""
        outputs: list[Output] = []
        if self.plan.interactive:
            outputs.append(HlsOutput(hls_dir(self.spool)))
        else:
            outputs.append(FileOutput(composite.container, self.spool / composite.name))
        if self.plan.rtmp_url:
            outputs.append(RtmpOutput(self.plan.rtmp_url, self.settings.rtmp_retry_s))
        return outputs

    def _seat(self, peer_id: str, name: str) -> None:
        if self._compositor is not None:
            self._compositor.join(peer_id, name)

    def _unseat(self, peer_id: str) -> None:
        if self._compositor is not None:
            self._compositor.leave(peer_id)
        self._inputs.forget(peer_id)
        self._mixer.remove(peer_id)

    def _video_ended(self, peer_id: str) -> None:
        if self._compositor is not None:
            self._compositor.video_ended(peer_id)

    def _render_until(self, stop_wall_s: float) -> None:
        assert self._timeline is not None
        interval_s = 1 / self._fps()
        if self._rendered_until_wall_s < self._timeline.start_wall_s:
            wall_s = self._timeline.start_wall_s  # stopped before the first frame: render from the start
        else:
            wall_s = self._rendered_until_wall_s + interval_s
        while wall_s <= stop_wall_s:
            # The last frame is written whatever it shows: the file's picture lasts until the stop.
            self._render(wall_s, last=wall_s + interval_s > stop_wall_s)
            wall_s += interval_s

    def _render_ticks(self, walls: list[float]) -> None:
        for wall_s in walls:
            self._render(wall_s)

    def _render(self, render_wall_s: float, *, last: bool = False) -> None:
        """Write everything up to `render_wall_s`: one composite frame and the audio that goes with it.

        A frame the same as the one before is left out (the file's previous frame lasts longer) unless the
        outputs need it (`CompositeEncoder.needs_frame`): an audio-only or empty meeting costs almost nothing.
        """
        assert self._timeline is not None
        self._rendered_until_wall_s = render_wall_s
        while self._inputs.changes:
            self._inputs.changes.popleft()()
        self._stages.start()
        self._feed_mixer(render_wall_s)
        self._stages.lap("audio_decode")
        if self._compositor is not None:
            self._update_tiles(render_wall_s)  # paused too: what was queued goes, the newest stays on its tile
        self._stages.lap("video_decode")
        media_s = self._timeline.media_time(render_wall_s)
        streams_live = self._composite is not None and self._composite.live
        if media_s is None:
            if self._composite is not None:
                self._composite.write_pause(render_wall_s)
            self._stages.lap("video_encode")
            self._still = not streams_live
            return
        wrote_picture = self._write_picture(media_s, render_wall_s, last)
        self._still = not wrote_picture and not streams_live
        end_s = media_s + 1 / self._fps()
        samples = round((end_s - self._audio_cursor_s) * SAMPLE_RATE)
        if samples > 0:
            block = self._mixer.mix(self._audio_cursor_s, samples)
            self._stages.lap("mix")
            if self._composite is not None:
                self._composite.write_audio(block, self._audio_cursor_s)
            if self._audio_file is not None:
                self._audio_file.write_audio(block, self._audio_cursor_s)
            self._audio_cursor_s += samples / SAMPLE_RATE
            self._stages.lap("audio_encode")

    def _write_picture(self, media_s: float, render_wall_s: float, last: bool) -> bool:
        """Compose and encode a frame if the picture changed or the outputs need one; whether it did."""
        if self._composite is None or self._compositor is None:
            return False
        if not (
            last
            or self._compositor.changed
            or self._watermark is not self._watermark_shown
            or self._composite.needs_frame(media_s)
        ):
            return False
        frame = self._compositor.compose()
        if self._watermark is not None:
            self._watermark.apply(frame)
        self._watermark_shown = self._watermark
        self._stages.lap("compose")
        self._composite.write_video(frame, media_s, render_wall_s)
        self._stages.lap("video_encode")
        return True

    def _update_tiles(self, render_wall_s: float) -> None:
        assert self._compositor is not None
        tiles = self._compositor.tiles()
        for peer_id, queue in list(self._inputs.video.items()):
            due = queue.take_until(render_wall_s)
            if due and peer_id in tiles:
                self._compositor.update(peer_id, due[-1].frame)
        # The mixer's last block ends where this frame starts: the outline follows what is heard with it.
        self._compositor.set_speaker(self._mixer.speakers.speaker)

    def _feed_mixer(self, render_wall_s: float) -> None:
        assert self._timeline is not None
        # A little past the rendered instant, so the limiter's lookahead sees what comes next.
        horizon_s = render_wall_s + 0.1
        for peer_id, queue in list(self._inputs.audio.items()):
            for timed in queue.take_until(horizon_s):
                media_s = self._timeline.media_time(timed.wall_time_s)
                if media_s is not None:
                    self._mixer.push(peer_id, timed.frame, media_s)

    def _first_packet_written(self) -> bool:
        outputs = [self._composite, self._audio_file]
        return any(output is not None and output.first_packet_at_s is not None for output in outputs)

    def _close_outputs(self) -> int | None:
        """Close every output, each whatever the others do: a file that cannot be finished keeps what it has."""
        for output in (self._composite, self._audio_file):
            if output is not None:
                try:
                    output.close()
                except Exception:
                    log.exception("closing %s failed; the file keeps what was written before", output.plan.name)
        if self.plan.interactive:
            package_hls(hls_dir(self.spool), self.spool / self.plan.main_file_name)
        main = self.spool / self.plan.main_file_name
        return main.stat().st_size if main.exists() else None


def next_tick(tick: int, behind_s: float, interval_s: float) -> int:
    """The output frame to render after frame `tick`, when that one was rendered `behind_s` late.

    Up to `CATCH_UP_S` late, the next frame: a stall is caught up frame by frame and loses nothing. Later than
    that the recorder is not keeping up at the full rate (an overloaded machine), so it renders every other
    frame, and every fourth in the second half of the band: less encoding work, and a file that shows a lower
    frame rate for a while instead of freezing, its audio whole. Beyond `MAX_CATCH_UP_S` it jumps to the frame
    due now, so the file keeps up with the meeting.
    """
    if behind_s <= CATCH_UP_S:
        return tick + 1
    if behind_s >= MAX_CATCH_UP_S:
        return tick + math.floor(behind_s / interval_s)
    return tick + (2 if behind_s < (CATCH_UP_S + MAX_CATCH_UP_S) / 2 else 4)


def _timed(work: Callable[..., Any], *args: Any) -> float:
    """Run `work` (in the worker thread); the seconds it took."""
    started_s = time.perf_counter()
    work(*args)
    return time.perf_counter() - started_s


async def _sleep_until(wall_s: float) -> None:
    delay = wall_s - media_now_s()
    if delay > 0:
        await asyncio.sleep(delay)
