"""Takeover's bookkeeping (recording/takeover.py): segment folders, where a segment belongs on the timeline,
and the join at upload — with real encodes, and a crash in the middle of the join."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from recordkit.recorder.plan import OutputPlan, VideoCodec
from recordkit.recording.reconciler import crash_time
from recordkit.recording.takeover import (
    join_parts,
    mark_started,
    media_start_s,
    new_part,
    parts,
    successor_began,
)
from tests.recorder.test_segments import composite_plan, duration_s, record

NAME = "rec.mp4"


def plan() -> OutputPlan:
    composite = replace(composite_plan(VideoCodec.H264), name=NAME)
    return OutputPlan(composite=composite, audio_file=None, interactive=False, rtmp_url=None, max_seconds=600)


def row(**fields: Any) -> Any:
    return SimpleNamespace(**fields)


def test_segments_are_numbered_and_placed_on_the_recording_timeline(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    first, second = new_part(spool), new_part(spool)
    assert [folder.name for _, folder in parts(spool)] == ["part-1", "part-2"]
    started = datetime(2026, 12, 7, 12, 0, 0)
    recording = row(started_time=started, paused_total_ms=1500)
    began = started.replace(tzinfo=UTC).timestamp() + 10.0
    assert media_start_s(recording, began) == 8.5, "paused time is left out, as the file leaves it out"
    assert successor_began(spool, None) is None, "a segment counts once its first frame is written"
    mark_started(second, began, 8.5)
    assert successor_began(spool, None) == began and successor_began(spool, first) == began
    assert successor_began(spool, second) is None, "nothing began after the last segment"


def test_the_upload_joins_the_segments_once_even_if_it_was_cut_short_midway(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    record(spool / NAME, plan().composite, 2.0, grey=60)  # type: ignore[arg-type]
    later = new_part(spool)
    record(later / NAME, plan().composite, 2.0, grey=180)  # type: ignore[arg-type]
    mark_started(later, 0.0, 3.0)
    new_part(spool)  # a successor that died before its first frame: no segment.json, left out
    # A first join cut short after the joined file was renamed into place, before the folders were removed.
    first_try = tmp_path / "first-try"
    shutil.copytree(spool, first_try)
    joined = join_parts(first_try, plan())
    assert [(item.name, len(item.gaps_s)) for item in joined] == [(NAME, 1)] and joined[0].gaps_s[0] > 0.9
    assert abs(duration_s(first_try / NAME) - 5.0) < 0.1 and not parts(first_try)
    os.replace(spool / NAME, _part0(spool) / NAME)
    shutil.copy(first_try / NAME, spool / NAME)
    assert join_parts(spool, plan()) == [], "a file found both in place and in part-0 was joined already"
    assert abs(duration_s(spool / NAME) - 5.0) < 0.1
    assert sorted(path.name for path in spool.iterdir()) == [NAME], "the segment folders are gone"


def test_a_recording_without_later_segments_is_left_as_it_is(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    record(spool / NAME, plan().composite, 1.0, grey=60)  # type: ignore[arg-type]
    size = (spool / NAME).stat().st_size
    assert join_parts(spool, plan()) == [] and (spool / NAME).stat().st_size == size


def test_a_crash_is_dated_by_the_latest_segments_last_write(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / NAME).write_bytes(b"first")
    later = new_part(spool)
    (later / NAME).write_bytes(b"later")
    now = datetime(2026, 12, 7, 12, 0, 0)
    first_s, later_s = (now - timedelta(seconds=60)), (now - timedelta(seconds=5))
    os.utime(spool / NAME, (0, first_s.replace(tzinfo=UTC).timestamp()))
    os.utime(later / NAME, (0, later_s.replace(tzinfo=UTC).timestamp()))
    recording = row(started_time=now - timedelta(minutes=5), updated_at=now)
    assert crash_time(recording, spool, now) == later_s  # type: ignore[arg-type]


def _part0(spool: Path) -> Path:
    folder = spool / "part-0"
    folder.mkdir(exist_ok=True)
    return folder
