"""Track recordings end to end: bots in a real meeting, the real track recorder, files checked by ffprobe and by
decoding (issue 6, acceptance 1–4)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import AsyncExitStack
from datetime import UTC
from pathlib import Path
from typing import Any

import av
import numpy as np

from recordkit.bot.client import JoinedPeer, join
from recordkit.bot.marks import BeepDetector, detect_flashes, pair_marks
from recordkit.bot.synthetic import (
    EncodedLoopVideoTrack,
    SyntheticAudioTrack,
    SyntheticClock,
    SyntheticVideoTrack,
)
from recordkit.clock import parse_iso8601
from recordkit.recorder.spool import spool_dir
from tests.helpers import CREDENTIALS_ENV
from tests.recorder.test_composite_e2e import download, ffprobe, until_status
from tests.support.media import Setup, ThreadServer
from tests.support.server import recordkit_serve

PRESENCE_TOLERANCE_S = 0.3
ALIGNMENT_TOLERANCE_S = 0.020
TRACK_NAME = re.compile(
    r"^(?P<prefix>.+)_(?P<user>[0-9a-f-]{36})_(?P<peer>[0-9a-f-]{36})_peer_(?P<kind>audio|video)_\d{13}\."
)


async def call(setup: Setup, method: str, path: str, **kwargs: Any) -> Any:
    return await asyncio.to_thread(setup.data, method, path, **kwargs)


async def join_bot(
    stack: AsyncExitStack, server: ThreadServer, meeting_id: str, participant: dict[str, Any], **tracks: Any
) -> JoinedPeer:
    return await stack.enter_async_context(join(server.base_url, meeting_id, participant["token"], **tracks))


async def start_tracks(setup: Setup, app_id: str, meeting_id: str, **body: Any) -> dict[str, Any]:
    data = await call(setup, "POST", f"/{app_id}/recordings/track", json={"meeting_id": meeting_id, **body})
    recording = await until_status(setup, app_id, data["recording"]["id"], {"RECORDING"})
    assert recording["status"] == "RECORDING", recording
    return recording


async def stop(setup: Setup, app_id: str, recording_id: str) -> dict[str, Any]:
    data: dict[str, Any] = await call(setup, "PUT", f"/{app_id}/recordings/{recording_id}", json={"action": "stop"})
    return data


async def fetch(done: dict[str, Any], folder: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """Every file of a finished track recording, and its manifest."""
    (layer,) = done["download_url"]
    files = {name: await download(item["download_url"], folder / name) for name, item in layer["download_urls"].items()}
    manifest_path = await download(layer["manifest"]["download_url"], folder / layer["manifest"]["file_name"])
    manifest = json.loads(manifest_path.read_text())
    assert manifest_path.stat().st_size == layer["manifest"]["file_size"]
    assert done["file_size"] == sum(path.stat().st_size for path in files.values()) + layer["manifest"]["file_size"]
    return files, manifest


def beeps(path: Path, frequency_hz: float) -> list[float]:
    """Onsets (seconds on the file's timeline) of one bot's beeps in its file."""
    detector = BeepDetector(48_000, frequency_hz=frequency_hz)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            detector.push_frame(frame)
    return detector.onsets_s


def span_s(start: str, end: str) -> float:
    return (parse_iso8601(end) - parse_iso8601(start)).total_seconds()


async def test_each_selected_participant_gets_an_opus_file_that_lines_up(
    server: ThreadServer, setup: Setup, tmp_path: Path
) -> None:
    """Acceptance 1 and 2: Ada is in from the start, Late joins 5 s later and leaves before the stop, Skipped is
    not asked for. Their beeps, made at the same instants of one shared clock, line up through the manifest."""
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    people = {
        name: await asyncio.to_thread(setup.participant, app_id, meeting_id, name) for name in ("Ada", "Skip", "Late")
    }
    pitch = {"Ada": 1000.0, "Skip": 1200.0, "Late": 1400.0}
    clock = SyntheticClock()
    async with AsyncExitStack() as stack:
        for name in ("Ada", "Skip"):
            audio = SyntheticAudioTrack(clock, beep_frequency_hz=pitch[name])
            await join_bot(stack, server, meeting_id, people[name], audio=audio)
        # Ada by her custom id, Late by participant id (§11.1: either matches).
        user_ids = [people["Ada"]["custom_participant_id"], people["Late"]["id"]]
        recording = await start_tracks(setup, app_id, meeting_id, user_ids=user_ids)
        rid = recording["id"]
        await asyncio.sleep(5)
        late_audio = SyntheticAudioTrack(clock, beep_frequency_hz=pitch["Late"])
        async with join(server.base_url, meeting_id, people["Late"]["token"], audio=late_audio) as late:
            late_joined_s = time.time()
            await asyncio.sleep(4)
            await late.leave()
            late_left_s = time.time()
        await asyncio.sleep(1)
        stopped = await stop(setup, app_id, rid)
    assert stopped["status"] == "UPLOADING" and stopped["file_size"] > 0
    done = await until_status(setup, app_id, rid, {"UPLOADED", "ERRORED"})
    assert done["status"] == "UPLOADED", done
    assert done["audio_download_url"] is None and done["download_url_expiry"] is not None
    files, manifest = await fetch(done, tmp_path)

    (layer,) = done["download_url"]
    assert layer["layer_name"] == "default"
    owners = {item["user_id"]: name for name, item in layer["download_urls"].items()}
    assert set(owners) == {people["Ada"]["id"], people["Late"]["id"]}, "one file each; Skip is not recorded"
    by_person = {name: files[owners[people[name]["id"]]] for name in ("Ada", "Late")}
    for file_name, item in layer["download_urls"].items():
        match = TRACK_NAME.match(file_name)
        assert match and file_name.endswith(".webm"), file_name
        assert (match["prefix"], match["user"], match["peer"], match["kind"]) == (
            "default", item["user_id"], item["peer_id"], "audio"
        )  # fmt: skip
        assert item["file_size"] == files[file_name].stat().st_size

    presence = {
        "Ada": span_s(done["started_time"], done["stopped_time"]),
        "Late": late_left_s - late_joined_s,
    }
    for name, path in by_person.items():
        probe = ffprobe(path)
        (stream,) = probe["streams"]
        assert (stream["codec_name"], int(stream["sample_rate"])) == ("opus", 48000)
        assert "webm" in probe["format"]["format_name"]
        duration_s = float(probe["format"]["duration"])
        assert abs(duration_s - presence[name]) <= PRESENCE_TOLERANCE_S, (name, duration_s, presence[name])

    entries = {entry["file_name"]: entry for entry in manifest["files"]}
    assert manifest["recording_id"] == rid and manifest["started_time"] == done["started_time"]
    assert manifest["stopped_time"] == done["stopped_time"] and set(entries) == set(files)
    ada, late_entry = entries[by_person["Ada"].name], entries[by_person["Late"].name]
    assert (ada["name"], ada["custom_participant_id"], ada["media_kind"], ada["codec"]) == (
        "Ada", "user-Ada", "audio", "opus"
    )  # fmt: skip
    assert -0.02 <= ada["offset_s"] < 0.3 and 4.8 < late_entry["offset_s"] < 5.8, "a few ms either side of time 0"

    # Placed at their offsets, the two files' beeps (same instants of one clock) coincide.
    placed = {
        name: [entries[path.name]["offset_s"] + t for t in beeps(path, pitch[name])] for name, path in by_person.items()
    }
    assert len(placed["Ada"]) >= 9 and len(placed["Late"]) >= 3, placed
    errors = [min(abs(t - a) for a in placed["Ada"]) for t in placed["Late"]]
    assert max(errors) <= ALIGNMENT_TOLERANCE_S, errors


async def test_video_layer_writes_each_participants_vp8_from_a_keyframe(
    server: ThreadServer, setup: Setup, tmp_path: Path
) -> None:
    """Acceptance 3: a video layer gives each peer a VP8 WebM that starts with a keyframe and plays, beside its audio;
    the manifest's offsets keep the two in sync."""
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    person = await asyncio.to_thread(setup.participant, app_id, meeting_id, "Cam")
    clock = SyntheticClock()
    tracks = {"audio": SyntheticAudioTrack(clock), "video": SyntheticVideoTrack(clock, label="Cam")}
    layers = {"cams": {"file_name_prefix": "cam", "media_kind": "video"}}
    async with AsyncExitStack() as stack:
        await join_bot(stack, server, meeting_id, person, **tracks)
        await asyncio.sleep(0.5)  # the sender's first keyframe is behind us: the recorder must ask for one
        recording = await start_tracks(setup, app_id, meeting_id, layers=layers)
        await asyncio.sleep(4.5)
        await stop(setup, app_id, recording["id"])
    done = await until_status(setup, app_id, recording["id"], {"UPLOADED", "ERRORED"})
    assert done["status"] == "UPLOADED", done
    files, manifest = await fetch(done, tmp_path)
    assert done["download_url"][0]["layer_name"] == "cams"
    kinds = {entry["media_kind"]: entry for entry in manifest["files"]}
    assert set(kinds) == {"audio", "video"} and len(files) == 2
    video_entry = kinds["video"]
    assert video_entry["file_name"].startswith(f"cam_{person['id']}_") and video_entry["codec"] == "vp8"
    path = files[video_entry["file_name"]]
    (stream,) = ffprobe(path)["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("vp8", 640, 360)
    with av.open(str(path)) as container:
        first_packet = next(packet for packet in container.demux(video=0) if packet.size)
        assert first_packet.is_keyframe
    frames, times = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.reformat(width=160, height=90))
            times.append(float(frame.time))
    assert frames[0].key_frame and len(frames) >= 25 * 4, len(frames)
    assert np.diff(times).max() < 0.1, "plays through without a hole"

    # Lip sync through the manifest: each flash and its beep (same instant of the bot's clock) coincide.
    flashes = [video_entry["offset_s"] + t for t in detect_flashes(frames, times_s=times)]
    audio_beeps = [kinds["audio"]["offset_s"] + t for t in beeps(files[kinds["audio"]["file_name"]], 1000.0)]
    report = pair_marks(flashes, audio_beeps)
    assert report.pairs >= 3 and abs(report.worst_ms or 0) <= 40, report


async def test_session_end_stops_the_recording_and_a_rejoin_gets_its_own_file(
    server: ThreadServer, setup: Setup
) -> None:
    """A track recording never outlives its session (§7.4): when everyone has left (keep-alive 0) it stops with
    ALL_PEERS_LEFT. Rejoining in between is a new connection, so a second file."""
    app_id, meeting_id = await asyncio.to_thread(setup.meeting, session_keep_alive_time_in_secs=0)
    stayer = await asyncio.to_thread(setup.participant, app_id, meeting_id, "Stayer")
    rejoiner = await asyncio.to_thread(setup.participant, app_id, meeting_id, "Rejoiner")
    clock = SyntheticClock()
    async with AsyncExitStack() as stack:
        await join_bot(stack, server, meeting_id, stayer, audio=SyntheticAudioTrack(clock))
        first = await join_bot(stack, server, meeting_id, rejoiner, audio=SyntheticAudioTrack(clock))
        recording = await start_tracks(setup, app_id, meeting_id)
        await asyncio.sleep(1.5)
        await first.leave()
        await join_bot(stack, server, meeting_id, rejoiner, audio=SyntheticAudioTrack(clock))
        await asyncio.sleep(1.5)
    everyone_left_s = time.monotonic()
    done = await until_status(setup, app_id, recording["id"], {"UPLOADED", "ERRORED"})
    assert time.monotonic() - everyone_left_s < 5
    assert done["status"] == "UPLOADED", done
    assert done["stop_reason"] == {"reason": "ALL_PEERS_LEFT", "caller": None}
    items = done["download_url"][0]["download_urls"].values()
    peers_by_user: dict[str, set[str]] = {}
    for item in items:
        peers_by_user.setdefault(item["user_id"], set()).add(item["peer_id"])
    assert {user: len(peers) for user, peers in peers_by_user.items()} == {stayer["id"]: 1, rejoiner["id"]: 2}


async def test_nobody_publishing_audio_ends_errored_without_files(server: ThreadServer, setup: Setup) -> None:
    """A track recording that captured no audio at all ends ERRORED instead of UPLOADING (§7.4)."""
    app_id, meeting_id = await asyncio.to_thread(setup.meeting)
    person = await asyncio.to_thread(setup.participant, app_id, meeting_id, "Silent")
    async with AsyncExitStack() as stack:
        await join_bot(stack, server, meeting_id, person, video=EncodedLoopVideoTrack(SyntheticClock(), 160, 90))
        recording = await start_tracks(setup, app_id, meeting_id)
        await asyncio.sleep(1.5)
        stopped = await stop(setup, app_id, recording["id"])
    assert stopped["status"] == "ERRORED", stopped
    assert stopped["stop_reason"] == {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}}
    assert stopped["file_size"] is None and stopped["download_url"] is None and stopped["stopped_time"] is not None
    assert not spool_dir(server.services.settings.data_dir, recording["id"]).exists(), "nothing left behind"


async def test_kill_9_mid_recording_then_restart_uploads_every_track_file(tmp_path: Path) -> None:
    """The files are on disk up to the last second before a crash; after a restart they are uploaded with a
    manifest rebuilt from their names (offsets to the millisecond of the name), their durations and the meeting's
    participants."""
    data_dir = tmp_path / "data"
    with recordkit_serve(data_dir, env=CREDENTIALS_ENV) as first:
        setup = Setup(first.base_url)
        app_id, meeting_id = await asyncio.to_thread(setup.meeting)
        person = await asyncio.to_thread(setup.participant, app_id, meeting_id, "Witness")
        async with join(first.base_url, meeting_id, person["token"], audio=SyntheticAudioTrack(SyntheticClock())):
            recording = await start_tracks(setup, app_id, meeting_id)
            await asyncio.sleep(4)
            first.process.kill()
            first.process.wait()
            killed_s = time.time()
        setup.close()
    with recordkit_serve(data_dir, env=CREDENTIALS_ENV) as second:
        setup = Setup(second.base_url)
        done = await until_status(setup, app_id, recording["id"], {"UPLOADED", "ERRORED"})
        assert done["status"] == "UPLOADED", done
        assert done["stop_reason"] == {"reason": "INTERNAL_ERROR", "caller": None}
        files, manifest = await fetch(done, tmp_path)
        setup.close()
    (path,) = files.values()
    (entry,) = manifest["files"]
    assert manifest["recovered"] and entry["user_id"] == person["id"] and abs(entry["offset_s"]) < 0.3
    assert (entry["custom_participant_id"], entry["name"]) == (person["custom_participant_id"], "Witness")
    recorded_s = killed_s - parse_iso8601(done["started_time"]).replace(tzinfo=UTC).timestamp()
    duration_s = float(ffprobe(path)["format"]["duration"])
    assert recorded_s - 1.5 <= duration_s <= recorded_s, (duration_s, recorded_s)
    # The rebuilt manifest reads each file's duration from the file itself.
    assert entry["duration_s"] is not None and abs(entry["duration_s"] - duration_s) < 0.05, (entry, duration_s)
    first_s, last_s = (parse_iso8601(entry[key]).timestamp() for key in ("first_sample_time", "last_sample_time"))
    assert abs(last_s - first_s - entry["duration_s"]) < 0.002
