"""The track recorder fed by a generated room (no network): who is recorded, one file per track, the manifest's
offsets, the 24 h cap, and a recording with nothing to record (issue 6)."""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Any, cast

import pytest

from recordkit.meetings.media.events import ParticipantInfo, ParticipantJoined, RoomEvent, TrackAdded, TrackInfo
from recordkit.meetings.media.receiving import EncodedFrame, is_keyframe
from recordkit.meetings.media.source import MediaSource
from recordkit.recorder.capture import Finished
from recordkit.recorder.composite import Ending, RecorderHooks, RecorderSettings
from recordkit.recorder.manifest import manifest_file_name
from recordkit.recorder.track import TrackPlan, TrackRecorder
from tests.support.media import encode_opus, encode_vp8

AUDIO_TB = fractions.Fraction(1, 48_000)
VIDEO_TB = fractions.Fraction(1, 90_000)
OPUS = encode_opus(50)


class FakeReader:
    """Packets a test pushes, read like `PacketReader`."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[EncodedFrame | None] = asyncio.Queue()
        self.closed = False

    def push(self, frame: EncodedFrame) -> None:
        self.queue.put_nowait(frame)

    def end(self) -> None:
        self.queue.put_nowait(None)

    def close(self) -> None:
        self.closed = True
        self.queue.put_nowait(None)

    def __aiter__(self) -> FakeReader:
        return self

    async def __anext__(self) -> EncodedFrame:
        frame = await self.queue.get()
        if frame is None:
            raise StopAsyncIteration
        return frame


class FakeEvents:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[RoomEvent | None] = asyncio.Queue()

    async def __aenter__(self) -> FakeEvents:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __aiter__(self) -> AsyncIterator[RoomEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RoomEvent]:
        while (event := await self.queue.get()) is not None:
            yield event


class FakeRoom:
    """A `MediaSource` whose participants and packets the test makes up."""

    def __init__(self) -> None:
        self.stream = FakeEvents()
        self.readers: dict[str, FakeReader] = {}
        self.closed = False

    def events(self) -> FakeEvents:
        return self.stream

    def packets(self, track_id: str) -> FakeReader:
        return self.readers.setdefault(track_id, FakeReader())

    async def close(self) -> None:
        self.closed = True

    def join(self, name: str, peer: str, *kinds: str) -> list[TrackInfo]:
        who = ParticipantInfo(f"id-{name}", peer, name, f"custom-{name}", "group_call_host")
        self.stream.queue.put_nowait(ParticipantJoined(who, time.time()))
        tracks = []
        for kind in kinds:
            codec, rate = ("audio/opus", 48_000) if kind == "audio" else ("video/VP8", 90_000)
            track = TrackInfo(f"{peer}-{kind}", kind, codec, rate, who)
            self.stream.queue.put_nowait(TrackAdded(track))
            tracks.append(track)
        return tracks


class Recorded:
    """A running recorder and what it told the rest of recordkit."""

    def __init__(self, recorder: TrackRecorder, task: asyncio.Task[None]) -> None:
        self.recorder = recorder
        self.task = task
        self.attached: list[float] = []
        self.endings: list[Ending] = []


async def start(room: FakeRoom, spool: Path, config: dict[str, Any], max_duration_s: float = 86_400) -> Recorded:
    attached_once = asyncio.Event()

    async def attached(began_wall_s: float) -> None:
        recorded.attached.append(began_wall_s)
        attached_once.set()

    async def ended(ending: Ending) -> None:
        recorded.endings.append(ending)

    recorder = TrackRecorder(
        TrackPlan.from_config(config, max_duration_s),
        cast(MediaSource, room),
        spool,
        RecorderHooks(first_packet=attached, ended_by_itself=ended),
        recording_id="rid",
        meeting_id="mid",
        session_id="sid",
        settings=RecorderSettings(),
    )
    recorded = Recorded(recorder, asyncio.create_task(recorder.run()))
    await asyncio.wait_for(attached_once.wait(), 5)
    await asyncio.sleep(0.02)  # the joins queued so far are seen
    return recorded


def audio(index: int, wall_s: float, pts0: int = 0) -> EncodedFrame:
    return EncodedFrame(OPUS[index % len(OPUS)], pts0 + index * 960, AUDIO_TB, True, wall_s)


async def finish(recorded: Recorded) -> tuple[Finished, dict[str, Any]]:
    finished = await recorded.recorder.finish()
    await asyncio.wait_for(recorded.task, 5)
    path = recorded.recorder.spool / manifest_file_name("rid")
    return finished, json.loads(path.read_text()) if path.exists() else {}


async def test_selected_participants_get_a_file_per_track_placed_by_their_send_time(tmp_path: Path) -> None:
    room = FakeRoom()
    (ada,) = room.join("ada", "peer-1", "audio")
    (skipped,) = room.join("bob", "peer-2", "audio")
    recorded = await start(room, tmp_path, {"user_ids": ["custom-ada", "id-cy"]})
    t0 = recorded.recorder.began_wall_s
    assert t0 is not None and recorded.attached == [t0], "RECORDING as soon as attached"
    for index in range(50):  # Ada: 1 s of packets, sent from 0.1 s after time 0
        room.readers[ada.track_id].push(audio(index, t0 + 0.1 + index * 0.02, pts0=123_456))
    assert skipped.track_id not in room.readers, "Bob is not asked for, so not read"
    (cy,) = room.join("cy", "peer-3", "audio")  # joins later and matches by participant id
    await asyncio.sleep(0.05)
    for index in range(25):
        room.readers[cy.track_id].push(audio(index, t0 + 0.5 + index * 0.02))
    room.readers[cy.track_id].end()  # Cy leaves: the file closes before the stop
    await asyncio.sleep(0.5)
    assert [entry.user_id for entry in recorded.recorder.files] == ["id-cy"], "closed when Cy's track ended"
    finished, manifest = await finish(recorded)

    assert finished.captured_media and room.closed
    files = {entry["user_id"]: entry for entry in manifest["files"]}
    assert set(files) == {"id-ada", "id-cy"}
    assert [entry["user_id"] for entry in manifest["files"]] == ["id-ada", "id-cy"], "listed by offset"
    assert files["id-ada"]["offset_s"] == pytest.approx(0.1, abs=1e-6)
    assert files["id-cy"]["offset_s"] == pytest.approx(0.5, abs=1e-6)
    assert files["id-ada"]["duration_s"] == pytest.approx(1.0) and files["id-cy"]["duration_s"] == pytest.approx(0.5)
    assert files["id-ada"]["file_name"] == f"default_id-ada_peer-1_peer_audio_{math.floor((t0 + 0.1) * 1000)}.webm"
    sizes = sum(entry["file_size"] for entry in manifest["files"])
    assert finished.file_size == sizes + (tmp_path / manifest_file_name("rid")).stat().st_size
    assert manifest["started_time"] < manifest["stopped_time"] and manifest["session_id"] == "sid"


async def test_video_is_recorded_only_on_a_video_layer(tmp_path: Path) -> None:
    vp8 = encode_vp8(frames=15)
    for media_kind, expected in (("audio", {"audio"}), ("video", {"audio", "video"})):
        room = FakeRoom()
        tracks = room.join("ada", "peer-1", "audio", "video")
        spool = tmp_path / media_kind
        config = {"layers": {"cams": {"file_name_prefix": "cam", "media_kind": media_kind}}}
        recorded = await start(room, spool, config)
        t0 = recorded.recorder.began_wall_s
        assert t0 is not None
        for index in range(15):
            room.packets(tracks[0].track_id).push(audio(index, t0 + index * 0.02))
            frame = EncodedFrame(
                vp8[index], index * 3000, VIDEO_TB, is_keyframe("video/vp8", vp8[index]), t0 + index / 30
            )
            room.packets(tracks[1].track_id).push(frame)
        await asyncio.sleep(0.3)
        _, manifest = await finish(recorded)
        assert {entry["media_kind"] for entry in manifest["files"]} == expected
        assert {entry["layer_name"] for entry in manifest["files"]} == {"cams"}
        assert all(entry["file_name"].startswith("cam_id-ada_peer-1_peer_") for entry in manifest["files"])


async def test_twenty_four_hours_end_the_recording_at_the_cap(tmp_path: Path) -> None:
    room = FakeRoom()
    (ada,) = room.join("ada", "peer-1", "audio")
    recorded = await start(room, tmp_path, {}, max_duration_s=0.4)
    t0 = recorded.recorder.began_wall_s
    assert t0 is not None
    for index in range(40):  # 0.8 s sent, the second half after the cap
        room.readers[ada.track_id].push(audio(index, t0 + index * 0.02))
    await asyncio.wait_for(recorded.task, 5)
    (ending,) = recorded.endings
    assert ending.reason == "max_seconds" and ending.wrote_media
    assert ending.finished.ended_at.replace(tzinfo=UTC).timestamp() == pytest.approx(t0 + 0.4, abs=1e-6)
    manifest = json.loads((tmp_path / manifest_file_name("rid")).read_text())
    (entry,) = manifest["files"]
    assert entry["duration_s"] == pytest.approx(0.4), "nothing sent after the cap is kept"


async def test_nothing_published_means_no_media_and_no_files(tmp_path: Path) -> None:
    room = FakeRoom()
    room.join("ada", "peer-1", "video")  # video only, on an audio layer
    recorded = await start(room, tmp_path / "spool", {})
    finished, manifest = await finish(recorded)
    assert not finished.captured_media and finished.file_size is None and manifest == {}
    assert not (tmp_path / "spool").exists()
