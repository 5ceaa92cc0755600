"""The track recording's manifest and `download_url` (issue 6; recordings.md §10.1, §11.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recordkit.recorder.manifest import (
    Manifest,
    ManifestFile,
    download_urls,
    manifest_file_name,
    read_manifest,
    recovered_files,
    wall_time_iso,
    with_file_details,
    write_manifest,
)
from recordkit.recording.config import track_file_name

USER = "5d4c3b2a-1f0e-4a9b-8c7d-6e5f4a3b2c1d"
PEER = "0e9d8c7b-6a5f-4e3d-9c1b-0a9f8e7d6c5b"


def entry(file_name: str, user_id: str = USER, peer_id: str = PEER, layer: str = "default") -> ManifestFile:
    return ManifestFile(
        file_name=file_name,
        layer_name=layer,
        media_kind="audio",
        codec="opus",
        user_id=user_id,
        custom_participant_id="user-ada",
        name="Ada",
        peer_id=peer_id,
        offset_s=1.5,
        first_sample_time="2026-03-02T10:05:01.620Z",
        last_sample_time="2026-03-02T10:05:11.620Z",
        duration_s=10.0,
        file_size=1234,
    )


@pytest.mark.parametrize(
    ("prefix", "kind", "extension", "expected"),
    [
        ("default", "audio", "webm", f"default_{USER}_{PEER}_peer_audio_1772445905120.webm"),
        ("my_show", "video", "mp4", f"my_show_{USER}_{PEER}_peer_video_1772445905120.mp4"),
    ],
)
def test_track_file_names(prefix: str, kind: str, extension: str, expected: str) -> None:
    assert track_file_name(prefix, USER, PEER, kind, 1772445905120, extension) == expected


def test_manifest_round_trips_through_its_file(tmp_path: Path) -> None:
    manifest = Manifest("rid", "mid", "sid", "2026-03-02T10:05:00.120Z", "2026-03-02T10:06:00.000Z", (entry("a.webm"),))
    path = tmp_path / manifest_file_name("rid")
    size = write_manifest(path, manifest)
    assert path.name == "rid_manifest.json" and size == path.stat().st_size
    assert read_manifest(path) == manifest
    assert read_manifest(tmp_path / "none.json") is None


def test_download_url_groups_files_per_layer_with_the_manifest_beside() -> None:
    files = [entry("a.webm"), entry("b.webm", user_id="u2", peer_id="p2")]
    manifest_link = {"file_name": "rid_manifest.json", "download_url": "https://x/m", "file_size": 99}
    (layer,) = download_urls(files, lambda name: f"https://x/{name}", manifest_link)
    assert layer == {
        "layer_name": "default",
        "download_urls": {
            "a.webm": {"download_url": "https://x/a.webm", "user_id": USER, "peer_id": PEER, "file_size": 1234},
            "b.webm": {"download_url": "https://x/b.webm", "user_id": "u2", "peer_id": "p2", "file_size": 1234},
        },
        "manifest": manifest_link,
    }


def test_a_crashed_recordings_files_are_known_by_their_names() -> None:
    late = track_file_name("my_show", USER, PEER, "audio", 1772445905120, "webm")
    early = track_file_name("my_show", USER, "p-2", "video", 1772445902000, "webm")
    sizes = {late: 10, early: 20, "rid_manifest.json.part": 5}
    found = recovered_files(sizes, "default", started_wall_s=1772445900.0)
    assert [(f.file_name, f.peer_id, f.media_kind, f.codec, f.offset_s, f.file_size) for f in found] == [
        (early, "p-2", "video", "vp8", 2.0, 20),
        (late, PEER, "audio", "opus", 5.12, 10),
    ]
    assert found[0].first_sample_time == wall_time_iso(1772445902.0) == "2026-03-02T10:05:02.000Z"


def test_a_rebuilt_entry_takes_its_participant_and_its_files_duration() -> None:
    name = track_file_name("my_show", USER, PEER, "audio", 1772445905120, "webm")
    (entry,) = recovered_files({name: 10}, "default", started_wall_s=1772445900.0)
    full = with_file_details(entry, ("user-42", "Ada"), 12.5)
    assert (full.custom_participant_id, full.name, full.duration_s) == ("user-42", "Ada", 12.5)
    assert full.last_sample_time == wall_time_iso(1772445905.12 + 12.5) == "2026-03-02T10:05:17.620Z"
    unknown = with_file_details(entry, None, None)
    assert (unknown.custom_participant_id, unknown.name, unknown.duration_s, unknown.last_sample_time) == (None,) * 4
