"""`recordkit demo`, the README's showcase, records two synthetic participants into a playable file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.server import free_port


def test_demo_prints_a_link_and_an_h264_aac_file(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "recordkit", "demo", "--exit", "--seconds", "3", "--port", str(free_port()),
               "--data-dir", str(tmp_path / "demo")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/files/" in result.stdout and "signature=" in result.stdout
    for expected in ("codec_name=h264", "codec_name=aac", "width=1280", "height=720", "channels=2"):
        assert expected in result.stdout, result.stdout
