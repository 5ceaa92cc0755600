"""Where a recording's files live while they are written: `<data dir>/spool/<recording id>/<file name>`."""

from __future__ import annotations

from pathlib import Path


def spool_dir(data_dir: Path, recording_id: str) -> Path:
    """The folder holding one recording's files until they are uploaded."""
    return data_dir / "spool" / recording_id
