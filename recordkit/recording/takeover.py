"""Takeover (issue 14): a composite recording whose worker died or is draining goes on in a new segment on
another worker, and at the end its segments become one file.

The first segment is the spool itself (`spool/<id>/<file>`), as for any recording. Each worker that continues the
recording writes `spool/<id>/part-<k>/<file>` (k = 1, 2, …) and, with its first frame, `part-<k>/segment.json`:
where that segment belongs on the recording's timeline (`media_start_s`: wall time since capture began, paused
time left out, as the file counts it). The spool is on storage every worker of the fleet reaches (the shared data
dir), so any worker can continue a recording and the upload can join it.

Only composites writing files continue: an interactive recording's segments and a track recording's files are
finished as they were left (the reconciler's recovery), as on a single machine.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from recordkit.db.models import Recording
from recordkit.recorder.plan import AudioFile, CompositeFile, OutputPlan
from recordkit.recorder.segments import Segment, join_segments
from recordkit.recording.lifecycle import Kind

log = logging.getLogger(__name__)

PART = re.compile(r"part-([0-9]{1,6})")
SEGMENT_FILE = "segment.json"


def continuable(recording: Recording) -> bool:
    """Whether another worker may continue this recording in a new segment (else it is finished as left)."""
    return recording.type == Kind.COMPOSITE.value and not recording.output_file_name.endswith(".tar")


def parts(spool: Path) -> list[tuple[int, Path]]:
    """The later segments' folders, in order."""
    found = [(int(match[1]), path) for path in spool.glob("part-*") if (match := PART.fullmatch(path.name))]
    return sorted(found)


def new_part(spool: Path) -> Path:
    """The folder of the next segment, created."""
    index = max((index for index, _ in parts(spool)), default=0) + 1
    folder = spool / f"part-{index}"
    folder.mkdir(parents=True)
    return folder


def media_start_s(recording: Recording, began_wall_s: float) -> float:
    """Where a segment whose first frame is at `began_wall_s` belongs on the recording's timeline."""
    assert recording.started_time is not None
    started_s = recording.started_time.replace(tzinfo=UTC).timestamp()
    return max(0.0, began_wall_s - started_s - (recording.paused_total_ms or 0) / 1000)


def mark_started(part: Path, began_wall_s: float, start_s: float) -> None:
    """Written with the segment's first frame: from then on the segment is part of the recording."""
    temporary = part / f".{SEGMENT_FILE}"
    temporary.write_text(json.dumps({"began_wall_s": began_wall_s, "media_start_s": start_s}))
    os.replace(temporary, part / SEGMENT_FILE)


def began_wall_s(part: Path) -> float | None:
    """When the segment's first frame was captured, once it was."""
    started = _started(part)
    return started[0] if started is not None else None


def _started(part: Path) -> tuple[float, float] | None:
    """`segment.json` of a segment that captured its first frame: (`began_wall_s`, `media_start_s`)."""
    try:
        written = json.loads((part / SEGMENT_FILE).read_text())
        return float(written["began_wall_s"]), float(written["media_start_s"])
    except (OSError, ValueError, KeyError):
        return None


def successor_began(spool: Path, mine: Path | None) -> float | None:
    """When a segment begun after ours (`mine`: our part folder, None for the first segment) had its first
    frame: a worker continuing the recording is capturing it."""
    own = _index(mine) if mine is not None else 0
    for index, folder in parts(spool):
        if index > own and (began := began_wall_s(folder)) is not None:
            return began
    return None


@dataclass(frozen=True)
class JoinedFile:
    name: str
    gaps_s: list[float]


def join_parts(spool: Path, plan: OutputPlan) -> list[JoinedFile]:
    """Make each of the recording's files one file from its segments, in place (before the upload moves them).

    Idempotent across crashes: the first segment is first moved into `part-0/`, the joined file written whole
    into its place, and the part folders removed last; a file found both in place and in `part-0/` was joined."""
    later = [(folder, started[1]) for _, folder in parts(spool) if (started := _started(folder)) is not None]
    if not later and not (spool / "part-0").exists():
        _remove_parts(spool)  # segments begun but never captured a frame
        return []
    joined = []
    for name, file_plan in _files(plan):
        target, first = spool / name, spool / "part-0" / name
        if target.exists() and first.exists():
            continue
        if target.exists():
            first.parent.mkdir(exist_ok=True)
            os.replace(target, first)
        if not first.exists():
            continue
        segments = [Segment(first, 0.0)] + [
            Segment(folder / name, start_s) for folder, start_s in later if (folder / name).exists()
        ]
        result = join_segments(segments, target, file_plan)
        log.info("%s: %d segments joined, gaps filled: %s s", name, len(segments), result.gaps_s)
        joined.append(JoinedFile(name, result.gaps_s))
    _remove_parts(spool)
    return joined


def _files(plan: OutputPlan) -> list[tuple[str, CompositeFile | AudioFile]]:
    files: list[tuple[str, CompositeFile | AudioFile]] = (
        [(plan.composite.name, plan.composite)] if plan.composite else []
    )
    return files + ([(plan.audio_file.name, plan.audio_file)] if plan.audio_file is not None else [])


def _remove_parts(spool: Path) -> None:
    for _, folder in parts(spool):  # part-0 (the first segment, moved aside) included
        shutil.rmtree(folder, ignore_errors=True)


def _index(folder: Path) -> int:
    match = PART.fullmatch(folder.name)
    return int(match[1]) if match else 0
