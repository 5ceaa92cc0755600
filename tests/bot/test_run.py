"""The bot's run: joins through `client.join`, publishes, watches what comes back, reports, leaves."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import av
import pytest
from aiortc.mediastreams import MediaStreamTrack

from recordkit import cli
from recordkit.bot import run
from recordkit.bot.run import BotReport, meeting_id_from_token, run_bot, summary
from recordkit.bot.synthetic import SyntheticClock
from recordkit.meetings.tokens import ParticipantClaims, ParticipantTokens
from recordkit.vendor_logs import VENDOR_LOGGERS

MEETING_ID = "9b2a6c1e-1111-4c4c-8d8d-0123456789ab"
TOKEN = ParticipantTokens("k" * 32).issue(ParticipantClaims("acct", "app", MEETING_ID, "peer-1"))


@dataclass(frozen=True)
class Timed:
    frame: av.VideoFrame | av.AudioFrame
    wall_time_s: float


class Loopback:
    """A receive section of the fake client carrying the bot's own track back: each frame arrives `delay_s`
    after it was made and is timed like the client times frames (send time on our clock + quickest transit)."""

    def __init__(self, source: MediaStreamTrack, clock: SyntheticClock, delay_s: float) -> None:
        self.kind = source.kind
        self.slot = SimpleNamespace(participant_id="p-self", name="Self")
        self._source, self._clock, self._delay_s = source, clock, delay_s

    @asynccontextmanager
    async def frames(self) -> AsyncIterator[AsyncIterator[Timed]]:
        in_flight: asyncio.Queue[tuple[float, Timed]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def send() -> None:  # pipelined like a network: the delay does not slow the sender down
            while True:
                frame = await self._source.recv()
                sent_s = self._clock.to_unix_s(float(frame.pts * frame.time_base))
                in_flight.put_nowait((loop.time() + self._delay_s, Timed(frame, sent_s + self._delay_s)))

        async def receive() -> AsyncIterator[Timed]:
            while True:
                due, timed = await in_flight.get()
                await asyncio.sleep(due - loop.time())
                yield timed

        sender = asyncio.create_task(send())
        try:
            yield receive()
        finally:
            sender.cancel()


@dataclass
class FakeJoin:
    """Stands in for `recordkit.bot.client.join`: records the call and loops the bot's own media back."""

    video_delay_s: float = 0.030
    audio_delay_s: float = 0.050
    calls: list[dict[str, Any]] = field(default_factory=list)
    left: bool = False
    slots_refreshed: bool = False

    @asynccontextmanager
    async def __call__(self, server: str, meeting_id: str, token: str, **options: Any) -> AsyncIterator[Any]:
        self.calls.append({"server": server, "meeting_id": meeting_id, "token": token, **options})
        clock = options["audio"].clock
        remotes = [] if options["video"] is None else [Loopback(options["video"], clock, self.video_delay_s)]
        remotes.append(Loopback(options["audio"], clock, self.audio_delay_s))
        fake = self

        class Peer:
            remote_tracks = remotes

            async def refresh_slots(self) -> list[Loopback]:
                fake.slots_refreshed = True
                return remotes

        try:
            yield Peer()
        finally:
            self.left = True


async def test_the_bot_receives_marks_and_measures_their_sync() -> None:
    join = FakeJoin()
    lines: list[str] = []
    report = await run_bot("http://media.test", TOKEN, duration_s=2.6, name="bot-a", on_second=lines.append, join=join)
    assert join.left
    assert join.calls[0]["meeting_id"] == MEETING_ID and join.calls[0]["receive_video"] == run.DEFAULT_RECEIVE
    assert report.meeting_id == MEETING_ID and report.name == "bot-a"
    assert report.video_frames_sent >= 70 and report.audio_frames_sent >= 120
    [video], [audio] = report.received_video, report.received_audio
    assert video.frames >= 70 and audio.frames >= 120
    assert len(video.marks_unix_s) == len(audio.marks_unix_s) == 2
    # Marks are timed on our wall clock: each sender mark plus that track's transit delay.
    for received, delay_ms in ((video, 30), (audio, 50)):
        for latency_ms in received.delays_ms(report.clock_start_unix_s):
            assert latency_ms == pytest.approx(delay_ms, abs=8)
    assert join.slots_refreshed and video.participant_name == audio.participant_name == "Self"
    for sync in (report.sync(0), report.sync("p-self"), report.sync("Self")):
        assert sync.pairs == 2 and sync.median_ms == pytest.approx(20, abs=3)
    assert len(lines) == 2 and lines[0].startswith("t=   1s")
    assert "v0:" in lines[0] and "1 flash" in lines[0] and "1 beep" in lines[0]
    [left, received] = summary(report)
    assert left.startswith("left after 2.") and "sent" in left
    assert received.startswith("from Self: ") and "A/V offset median +" in received


async def test_an_audio_only_bot_publishes_no_video_and_stops_when_asked() -> None:
    join, stop = FakeJoin(), asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, stop.set)
    report = await asyncio.wait_for(
        run_bot("http://media.test", TOKEN, duration_s=None, name="ears", audio_only=True, stop=stop, join=join),
        timeout=5,
    )
    assert join.calls[0]["video"] is None and join.left
    assert report.video_frames_sent == 0 and report.received_video == []
    assert 0.2 < report.left_unix_s - report.joined_unix_s < 2


async def test_the_bot_leaves_when_the_join_fails() -> None:
    @asynccontextmanager
    async def refused(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise PermissionError("401")
        yield

    with pytest.raises(PermissionError):
        await run_bot("http://media.test", TOKEN, duration_s=1, name="x", join=refused)


def test_the_meeting_id_is_read_from_the_token_without_its_key() -> None:
    assert meeting_id_from_token(TOKEN) == MEETING_ID
    for bad in ("not-a-token", "a.b.c", "a." + "e30" + ".c"):
        with pytest.raises(ValueError, match="meeting-id"):
            meeting_id_from_token(bad)


@pytest.fixture
def process_umask() -> Iterator[None]:
    """`cli.main` sets the process's umask (077) and its loggers' levels: give the rest of the session its own."""
    saved = os.umask(0o022)
    os.umask(saved)
    levels = {name: logging.getLogger(name).level for name in VENDOR_LOGGERS}
    yield
    os.umask(saved)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("process_umask")
def test_the_bot_command_passes_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run_cli(**kwargs: Any) -> int:
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(run, "run_cli", fake_run_cli)
    cli.main(["bot", "--server", "http://h:1", "--token", "t", "--duration", "2.5", "--name", "n", "--audio-only"])
    assert seen == {
        "server": "http://h:1",
        "token": "t",
        "duration_s": 2.5,
        "name": "n",
        "audio_only": True,
        "meeting_id": None,
        "receive": 4,
        "pre_encoded": False,
    }


@pytest.mark.usefixtures("process_umask")
def test_a_bad_token_is_reported_without_joining(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bot", "--server", "http://h:1", "--token", "nope"])
    assert exit_info.value.code == 2
    assert "--meeting-id" in capsys.readouterr().err


def test_the_command_line_starts_without_loading_media_libraries() -> None:
    code = "import sys, recordkit.cli; print(sorted({'av', 'aiortc', 'numpy'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_summary_of_a_bot_that_received_nothing() -> None:
    report = BotReport("b", MEETING_ID, 0, 10, 12.5, 75, 125, 0, [], [])
    assert summary(report) == ["left after 2.5 s; sent 75 video and 125 audio frames (0 skipped)"]
