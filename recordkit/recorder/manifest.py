"""The manifest of a track recording: which file holds whom, and where each file sits in time.

A track recording writes one file per peer and track (recordings.md §11.1), each starting when its peer's
first packet arrived. The manifest, `<recording_id>_manifest.json`, is uploaded beside them and says, for
every file, whose it is and its `offset_s`: the seconds from the recording's time 0 (its `started_time`) to
the file's first sample. Placing every file at its offset on one timeline lines the participants up as
they were heard, whatever editor or script does it:

    {"version": 1, "recording_id": "…", "meeting_id": "…", "session_id": "…",
     "started_time": "2026-03-02T10:05:00.120Z", "stopped_time": "2026-03-02T10:35:00.004Z",
     "files": [{"file_name": "default_<user>_<peer>_peer_audio_1772445905120.webm", "layer_name": "default",
                "media_kind": "audio", "codec": "opus", "user_id": "<participant id>",
                "custom_participant_id": "user-42", "name": "Ada", "peer_id": "<peer id>",
                "offset_s": 2.513, "first_sample_time": "2026-03-02T10:05:02.633Z",
                "last_sample_time": "2026-03-02T10:20:14.453Z", "duration_s": 911.82, "file_size": 7310221}]}

Offsets come from the senders' clock reports (RTCP SR), the same clock the media plane uses to keep
participants in sync, so they are exact to a few milliseconds (a file whose first packet left its sender
as the recording began may show an offset a few milliseconds below 0); the date in a file's name is the
first packet's send time as first estimated, and only a name.
`user_id` is the participant id, as in `download_url` (§11.3). Everything here is pure except
`read_manifest`/`write_manifest`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recordkit.clock import parse_iso8601, to_wire
from recordkit.recording.config import TRACK_STREAM_KIND

MANIFEST_VERSION = 1
# `<prefix>_<user_id>_<peer_id>_peer_<media_kind>_<ms>.<ext>`; ids are UUIDs, so the prefix (which may
# contain `_`) is whatever comes before them.
TRACK_FILE = re.compile(
    rf"^(?P<prefix>.+)_(?P<user_id>[^_]+)_(?P<peer_id>[^_]+)_{TRACK_STREAM_KIND}_(?P<media_kind>audio|video)_"
    r"(?P<first_ms>\d+)\.(?P<extension>webm|mp4)$"
)


def manifest_file_name(recording_id: str) -> str:
    """The manifest's file name, beside the track files in the bucket."""
    return f"{recording_id}_manifest.json"


def wall_time_iso(wall_s: float) -> str:
    """A Unix time as the API writes times: ISO 8601 UTC with milliseconds."""
    moment = datetime.fromtimestamp(wall_s, UTC).replace(tzinfo=None)
    text = to_wire(moment)
    assert text is not None
    return text


@dataclass(frozen=True)
class ManifestFile:
    """One file of the recording and its place in time. In a manifest rebuilt after a crash `offset_s` comes
    from the milliseconds in the file's name (to within a few ms) and the duration from the file itself;
    fields are None there only when the file or the participant could not be read."""

    file_name: str
    layer_name: str
    media_kind: str
    codec: str | None
    user_id: str
    custom_participant_id: str | None
    name: str | None
    peer_id: str
    offset_s: float | None
    first_sample_time: str | None
    last_sample_time: str | None
    duration_s: float | None
    file_size: int


@dataclass(frozen=True)
class Manifest:
    """The manifest of one track recording; `files` in the order they were opened."""

    recording_id: str
    meeting_id: str
    session_id: str | None
    started_time: str
    stopped_time: str
    files: tuple[ManifestFile, ...] = field(default_factory=tuple)
    recovered: bool = False  # rebuilt from file names after recordkit stopped mid-recording

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"version": MANIFEST_VERSION, **asdict(self)}
        body["files"] = [asdict(entry) for entry in self.files]
        return json.dumps(body, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        body = json.loads(data)
        files = tuple(ManifestFile(**entry) for entry in body["files"])
        return cls(
            recording_id=body["recording_id"],
            meeting_id=body["meeting_id"],
            session_id=body.get("session_id"),
            started_time=body["started_time"],
            stopped_time=body["stopped_time"],
            files=files,
            recovered=bool(body.get("recovered", False)),
        )


def write_manifest(path: Path, manifest: Manifest) -> int:
    """Write the manifest (replacing any older one at once); its size in bytes."""
    data = manifest.to_json()
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    partial.replace(path)
    return len(data)


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at `path`, or None when there is none."""
    try:
        return Manifest.from_json(path.read_bytes())
    except FileNotFoundError:
        return None


def recovered_files(sizes: dict[str, int], layer_name: str, started_wall_s: float | None) -> list[ManifestFile]:
    """Manifest entries for the track files found after a crash (`sizes`: file name → bytes), from their names:
    whose they are, and an offset from the first packet's milliseconds in the name (to within a few ms)."""
    entries = []
    for file_name in sorted(sizes, key=lambda name: (_first_ms(name), name)):
        match = TRACK_FILE.match(file_name)
        if match is None:
            continue
        first_s = int(match["first_ms"]) / 1000
        entries.append(
            ManifestFile(
                file_name=file_name,
                layer_name=layer_name,
                media_kind=match["media_kind"],
                codec=_CODECS[(match["media_kind"], match["extension"])],
                user_id=match["user_id"],
                custom_participant_id=None,
                name=None,
                peer_id=match["peer_id"],
                offset_s=round(first_s - started_wall_s, 6) if started_wall_s is not None else None,
                first_sample_time=wall_time_iso(first_s),
                last_sample_time=None,
                duration_s=None,
                file_size=sizes[file_name],
            )
        )
    return entries


def with_file_details(
    entry: ManifestFile, person: tuple[str, str | None] | None, duration_s: float | None
) -> ManifestFile:
    """A rebuilt entry completed with its participant's (custom id, name) and the duration read from its file."""
    last = None
    if duration_s is not None and entry.first_sample_time is not None:
        first = parse_iso8601(entry.first_sample_time).replace(tzinfo=UTC).timestamp()
        last = wall_time_iso(first + duration_s)
    custom_id, name = person if person is not None else (None, None)
    return replace(entry, custom_participant_id=custom_id, name=name, duration_s=duration_s, last_sample_time=last)


# What a track file holds, by its kind and extension (`passthrough.MUXINGS`).
_CODECS = {("audio", "webm"): "opus", ("video", "webm"): "vp8", ("video", "mp4"): "h264", ("audio", "mp4"): None}


def _first_ms(file_name: str) -> int:
    match = TRACK_FILE.match(file_name)
    return int(match["first_ms"]) if match else 0


def download_urls(
    files: Iterable[ManifestFile], link: Callable[[str], str], manifest_link: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """`download_url` of a track recording (§11.3): one entry per layer, each file with its signed link,
    `user_id`, `peer_id` and `file_size`. `link(file_name)` signs a link.

    The manifest is not one participant's file, so it is not among `download_urls`: each layer entry
    carries it as the extra key `manifest` (`{"file_name", "download_url", "file_size"}`; clients ignore
    keys they do not know).
    """
    layers: dict[str, dict[str, Any]] = {}
    for entry in files:
        layer = layers.setdefault(entry.layer_name, {"layer_name": entry.layer_name, "download_urls": {}})
        layer["download_urls"][entry.file_name] = {
            "download_url": link(entry.file_name),
            "user_id": entry.user_id,
            "peer_id": entry.peer_id,
            "file_size": entry.file_size,
        }
    if manifest_link is not None:
        for layer in layers.values():
            layer["manifest"] = manifest_link
    return list(layers.values())
