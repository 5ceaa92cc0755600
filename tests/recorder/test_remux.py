"""A spool cut off by kill -9 becomes a complete file again, packets copied, nothing re-encoded."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recordkit.recorder.plan import VideoCodec
from recordkit.recorder.remux import media_duration_s, remux_in_place
from tests.recorder.test_encoder import KILL_SCRIPT


def probe(path: Path) -> dict[str, object]:
    command = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


@pytest.mark.parametrize(("codec", "suffix"), [(VideoCodec.VP8, ".webm"), (VideoCodec.H264, ".mp4")])
def test_killed_spool_is_rewritten_with_a_duration(codec: VideoCodec, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"spool{suffix}"
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, codec.name, str(path)],
        stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2], text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None and process.stdout.readline() == "written\n"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = probe(path)["format"]
    size = remux_in_place(path)
    after = probe(path)
    assert size == path.stat().st_size
    assert 2.0 <= float(after["format"]["duration"]) <= 4.1, (before.get("duration"), after["format"])
    assert {s["codec_type"] for s in after["streams"]} == {"video", "audio"}
    assert not path.with_name(path.name + ".remux").exists()
    duration_s = media_duration_s(path)
    assert duration_s is not None and abs(duration_s - float(after["format"]["duration"])) < 0.05


def test_unreadable_file_is_kept_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "broken.webm"
    path.write_bytes(b"not a media file")
    assert remux_in_place(path) == 16 and path.read_bytes() == b"not a media file"
    assert media_duration_s(path) is None
