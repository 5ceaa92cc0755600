"""The bot: join a meeting with synthetic media, watch the others' media, and report what arrived.

`run_bot` is the importable body (tests run many bots in one process); `run_cli` is what `recordkit bot` calls.
It joins through `recordkit.bot.client.join` and reads each receive section's decoded frames.

Received marks are timed by the client's `wall_time_s`: when the frame was sent, on this machine's clock (from
RTCP sender reports, or anchored at the earliest arrival until the first report). Times of one participant's
audio and video are therefore comparable with each other and, for bots in one process, with the sender's
`clock_start_unix_s`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import av

from recordkit.bot.marks import (
    BeepDetector,
    FlashDetector,
    SyncReport,
    mean_luma,
    offsets_from_marks_ms,
    pair_marks,
)
from recordkit.bot.synthetic import (
    EncodedLoopAudioTrack,
    EncodedLoopVideoTrack,
    SyntheticAudioTrack,
    SyntheticClock,
    SyntheticVideoTrack,
)

# How many of the others' tracks of each kind a bot asks for (one receive section each, meetings.md §8).
DEFAULT_RECEIVE = 4
# How often the bot asks the server who is on its receive sections (one small GET).
SLOTS_REFRESH_S = 1.0

log = logging.getLogger(__name__)

JoinFn = Callable[..., AbstractAsyncContextManager[Any]]


@dataclass
class ReceivedStream:
    """What arrived on one receive section: frames, the marks (flashes or beeps) in them, and whose they were.

    A section the server hands to someone else mid-run (its sender left) mixes both senders' marks.
    """

    kind: str
    index: int  # among the receive sections of this kind
    frames: int = 0
    marks_unix_s: list[float] = field(default_factory=list)
    first_frame_unix_s: float | None = None  # when it arrived
    participant_id: str | None = None  # the last sender the server's slots showed on the section
    participant_name: str | None = None

    def delays_ms(self, sender_clock_start_unix_s: float) -> list[float]:
        """Each mark's delay in ms from the instant the sender made it (a whole second of its clock), given that
        clock's start on this machine's wall clock (bots in one process: the sender's `clock_start_unix_s`)."""
        return offsets_from_marks_ms(self.marks_unix_s, sender_clock_start_unix_s)


@dataclass
class BotReport:
    """One bot's run: what it sent and, per receive section, what it received."""

    name: str
    meeting_id: str
    clock_start_unix_s: float  # the sender clock's zero: its marks were made at clock_start_unix_s + k
    joined_unix_s: float
    left_unix_s: float
    video_frames_sent: int
    audio_frames_sent: int
    frames_skipped: int  # frames the synthetic tracks skipped because the sender fell behind real time
    received_video: list[ReceivedStream]
    received_audio: list[ReceivedStream]

    def received_from(self, participant: str) -> tuple[ReceivedStream | None, ReceivedStream | None]:
        """The (video, audio) received from a participant, by id or name; None for a kind not received."""

        def find(tracks: list[ReceivedStream]) -> ReceivedStream | None:
            return next((t for t in tracks if participant in (t.participant_id, t.participant_name)), None)

        return find(self.received_video), find(self.received_audio)

    def sync(self, which: int | str = 0) -> SyncReport:
        """A/V offsets (audio − video, ms) of a participant: by participant id or name, or by section index.

        By index, section i of each kind is the same participant only when everyone publishes both kinds (the
        server fills sections in join order per kind); by participant it is always right.
        """
        if isinstance(which, int):
            video, audio = self.received_video[which], self.received_audio[which]
        else:
            found_video, found_audio = self.received_from(which)
            if found_video is None or found_audio is None:
                raise KeyError(f"no audio and video received from {which}")
            video, audio = found_video, found_audio
        return pair_marks(video.marks_unix_s, audio.marks_unix_s)


class _Watcher:
    """Counts one remote track's frames and finds its marks."""

    def __init__(self, kind: str, index: int) -> None:
        self.result = ReceivedStream(kind=kind, index=index)
        self.marks_in_last_second = 0
        self.frames_in_last_second = 0
        self._flashes = FlashDetector()
        self._beeps: BeepDetector | None = None

    def on_frame(self, frame: av.VideoFrame | av.AudioFrame, time_s: float) -> None:
        """Note one decoded frame sent at `time_s` (Unix seconds)."""
        self.result.frames += 1
        self.frames_in_last_second += 1
        if self.result.first_frame_unix_s is None:
            self.result.first_frame_unix_s = time.time()
        if isinstance(frame, av.VideoFrame):
            flash = self._flashes.push_luma(mean_luma(frame), time_s)
            found = [] if flash is None else [flash]
        else:
            if self._beeps is None or self._beeps.sample_rate != frame.sample_rate:
                self._beeps = BeepDetector(frame.sample_rate)
            found = self._beeps.push_frame(frame, time_s)
        self.result.marks_unix_s += found
        self.marks_in_last_second += len(found)


async def run_bot(
    server: str,
    token: str,
    *,
    duration_s: float | None,
    name: str,
    audio_only: bool = False,
    meeting_id: str | None = None,
    receive_audio: int = DEFAULT_RECEIVE,
    receive_video: int = DEFAULT_RECEIVE,
    pre_encoded: bool = False,
    stop: asyncio.Event | None = None,
    on_second: Callable[[str], None] | None = None,
    join: JoinFn | None = None,
) -> BotReport:
    """Join the meeting as a bot, publish synthetic media, watch the others, leave, and report.

    Runs for `duration_s` seconds (None: until `stop` is set). `meeting_id` defaults to the token's.
    `pre_encoded` sends a one-second loop encoded once instead of encoding every frame (load tests; see
    `EncodedLoopVideoTrack`). `on_second` gets one status line per second. `join` replaces
    `recordkit.bot.client.join` (tests).
    """
    if join is None:
        from recordkit.bot.client import join as client_join

        join = client_join
    meeting_id = meeting_id or meeting_id_from_token(token)
    stop = stop or asyncio.Event()
    clock = SyntheticClock()
    audio: SyntheticAudioTrack | EncodedLoopAudioTrack
    video: SyntheticVideoTrack | EncodedLoopVideoTrack | None
    if pre_encoded:
        audio = EncodedLoopAudioTrack(clock)
        video = None if audio_only else EncodedLoopVideoTrack(clock, label=name)
    else:
        audio = SyntheticAudioTrack(clock)
        video = None if audio_only else SyntheticVideoTrack(clock, label=name)
    watchers: list[_Watcher] = []
    tasks: list[asyncio.Task[None]] = []
    joined_unix_s = time.time()
    try:
        async with join(
            server,
            meeting_id,
            token,
            audio=audio,
            video=video,
            receive_audio=receive_audio,
            receive_video=receive_video,
        ) as peer:
            joined_unix_s = time.time()
            remotes = list(peer.remote_tracks)
            for remote in remotes:
                watcher = _Watcher(remote.kind, sum(w.result.kind == remote.kind for w in watchers))
                watchers.append(watcher)
                label = f"{name}: {remote.kind} {watcher.result.index}"
                tasks.append(asyncio.create_task(_watch(remote, watcher), name=label))
            if on_second is not None:
                tasks.append(asyncio.create_task(_tick(clock, audio, video, watchers, on_second)))
            tasks.append(asyncio.create_task(_follow_slots(peer, remotes, watchers)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=duration_s)
            await _name_senders(peer, remotes, watchers)
            await _cancel(tasks)  # stop reading before leaving closes the tracks under the readers
    finally:
        await _cancel(tasks)
        audio.stop()
        if video is not None:
            video.stop()
    left_unix_s = time.time()
    results = [w.result for w in watchers]
    return BotReport(
        name=name,
        meeting_id=meeting_id,
        clock_start_unix_s=clock.start_unix_s,
        joined_unix_s=joined_unix_s,
        left_unix_s=left_unix_s,
        video_frames_sent=video.frames_sent if video is not None else 0,
        audio_frames_sent=audio.frames_sent,
        frames_skipped=audio.frames_skipped + (video.frames_skipped if video is not None else 0),
        received_video=[r for r in results if r.kind == "video"],
        received_audio=[r for r in results if r.kind == "audio"],
    )


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _watch(remote: Any, watcher: _Watcher) -> None:
    """Read a receive section's decoded frames (a `client.RemoteTrack`) until it ends or the bot leaves."""
    async with remote.frames() as frames:
        async for timed in frames:
            try:
                watcher.on_frame(timed.frame, timed.wall_time_s)
            except Exception:
                # One frame we cannot analyse must not stop the reading (the reader would fall behind).
                log.exception("cannot analyse a received %s frame", watcher.result.kind)


async def _name_senders(peer: Any, remotes: list[Any], watchers: list[_Watcher]) -> None:
    """Note who is on each receive section, from the server's slots (best effort).

    A section that is empty now keeps the participant seen on it before: they may just have left.
    """
    try:
        await peer.refresh_slots()
    except Exception as error:
        log.warning("cannot read the receive slots: %s", error)
        return
    for remote, watcher in zip(remotes, watchers, strict=True):
        if remote.slot is not None:
            watcher.result.participant_id = remote.slot.participant_id
            watcher.result.participant_name = remote.slot.name


async def _follow_slots(peer: Any, remotes: list[Any], watchers: list[_Watcher]) -> None:
    """Keep names current while in the meeting, so senders who leave before the bot are still named."""
    while True:
        await _name_senders(peer, remotes, watchers)
        await asyncio.sleep(SLOTS_REFRESH_S)


async def _tick(
    clock: SyntheticClock,
    audio: SyntheticAudioTrack | EncodedLoopAudioTrack,
    video: SyntheticVideoTrack | EncodedLoopVideoTrack | None,
    watchers: list[_Watcher],
    emit: Callable[[str], None],
) -> None:
    """One status line per second, half-way between marks so the second's mark has already been counted."""
    sent_video = sent_audio = 0
    second = max(1, int(clock.now_s()) + 1)
    while True:
        await clock.sleep_until(second + 0.5)
        video_sent = video.frames_sent if video is not None else 0
        parts = [f"t={second:>4}s sent v{video_sent - sent_video:>3} a{audio.frames_sent - sent_audio:>3}"]
        sent_video, sent_audio = video_sent, audio.frames_sent
        for watcher in watchers:
            mark = "flash" if watcher.result.kind == "video" else "beep"
            parts.append(
                f"{watcher.result.kind[0]}{watcher.result.index}: {watcher.frames_in_last_second:>3} frames "
                f"{watcher.marks_in_last_second} {mark}"
            )
            watcher.frames_in_last_second = watcher.marks_in_last_second = 0
        emit(" | ".join(parts))
        second += 1


def meeting_id_from_token(token: str) -> str:
    """The `meetingId` claim of a participant token, read WITHOUT checking the signature.

    The bot only needs the id for the signalling route's path; the server checks the token.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["meetingId"])
    except (IndexError, ValueError, KeyError, TypeError) as error:
        raise ValueError("the token is not a participant token with a meetingId; pass --meeting-id") from error


def default_name() -> str:
    """A short random bot name, so several bots in one meeting can be told apart on screen."""
    return f"bot-{secrets.token_hex(2)}"


def run_cli(
    *,
    server: str,
    token: str,
    duration_s: float | None,
    name: str | None,
    audio_only: bool,
    meeting_id: str | None,
    receive: int,
    pre_encoded: bool = False,
) -> int:
    """Body of `recordkit bot`: run until the duration ends or SIGINT/SIGTERM, print a summary; exit code."""
    name = name or default_name()
    try:
        meeting_id = meeting_id or meeting_id_from_token(token)
    except ValueError as error:
        print(f"recordkit bot: {error}", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(f"[{name}] {line}", flush=True)

    async def main() -> BotReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)

        def leave() -> None:
            say("leaving (press Ctrl-C again to quit at once)")
            stop.set()
            for signum in signals:  # a second signal gets the default behaviour, should leaving hang
                loop.remove_signal_handler(signum)

        for signum in signals:
            loop.add_signal_handler(signum, leave)
        say(f"joining {server} meeting {meeting_id}")
        return await run_bot(
            server,
            token,
            duration_s=duration_s,
            name=name,
            audio_only=audio_only,
            meeting_id=meeting_id,
            receive_audio=receive,
            receive_video=receive,
            pre_encoded=pre_encoded,
            stop=stop,
            on_second=say,
        )

    try:
        report = asyncio.run(main())
    except Exception as error:  # the join was refused or the server is unreachable: say so, no traceback
        print(f"recordkit bot: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    for line in summary(report):
        say(line)
    return 0


def summary(report: BotReport) -> list[str]:
    """Closing lines: how long the bot was in, what it sent, and each received participant's A/V offsets."""
    lines = [
        f"left after {report.left_unix_s - report.joined_unix_s:.1f} s; sent {report.video_frames_sent} video "
        f"and {report.audio_frames_sent} audio frames ({report.frames_skipped} skipped)"
    ]
    for who, video, audio in _by_sender(report):
        parts = [f"from {who}:"]
        if video is not None:
            parts.append(f"{video.frames} video frames, {len(video.marks_unix_s)} flashes;")
        if audio is not None:
            parts.append(f"{audio.frames} audio frames, {len(audio.marks_unix_s)} beeps;")
        if video is not None and audio is not None:
            sync = pair_marks(video.marks_unix_s, audio.marks_unix_s)
            parts.append(
                f"A/V offset median {sync.median_ms:+.1f} ms, worst {sync.worst_ms:+.1f} ms over {sync.pairs} marks"
                if sync.median_ms is not None and sync.worst_ms is not None
                else "no flash/beep pairs"
            )
        lines.append(" ".join(parts).rstrip(";"))
    return lines


def _by_sender(report: BotReport) -> list[tuple[str, ReceivedStream | None, ReceivedStream | None]]:
    """Received (who, video, audio) grouped by sender: by participant when the slots said, else by section."""
    groups: dict[str, tuple[str, list[ReceivedStream | None]]] = {}
    for position, received in enumerate((report.received_video, report.received_audio)):
        for track in received:
            if track.frames:
                key = track.participant_id or f"section {track.index}"
                who = track.participant_name or key
                groups.setdefault(key, (who, [None, None]))[1][position] = track
    return [(who, video, audio) for who, (video, audio) in groups.values()]
