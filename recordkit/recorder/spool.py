"""Where a recording's files live while they are written: `<data dir>/spool/<recording id>/<file name>`, and
the floor of free space their disk keeps (`RECORDKIT_MIN_FREE_MB`).

A recording that fills the disk fails every recording on it and leaves files nobody can finish; below the floor
no recording starts and capturing ones stop, which keeps room to close, remux and upload what was captured.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from recordkit.errors import Unavailable

log = logging.getLogger(__name__)


def spool_dir(data_dir: Path, recording_id: str) -> Path:
    """The folder holding one recording's files until they are uploaded."""
    return data_dir / "spool" / recording_id


MB = 1024 * 1024
# How often a capturing recording looks at the free space: a 720p composite writes ~0.3 MB a second.
CHECK_EVERY_S = 1.0
# A start refused for space is worth trying again once uploads or retention have freed some.
RETRY_AFTER_S = 60


@dataclass(frozen=True)
class DiskFloor:
    """Free space the disk holding `path` keeps; 0 bytes means no floor."""

    path: Path
    min_free_bytes: int

    def free_bytes(self) -> int:
        """Free space for this process on the disk of `path` (or of its nearest existing parent)."""
        probe = self.path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return shutil.disk_usage(probe).free

    def reached(self) -> bool:
        return self.min_free_bytes > 0 and self.free_bytes() < self.min_free_bytes

    def refuse_start_if_reached(self) -> None:
        """Raise `Unavailable` (503) when the disk is below its floor."""
        if self.reached():
            raise Unavailable(
                f"Not enough free disk space to record: less than {self.min_free_bytes // MB} MB free", RETRY_AFTER_S
            )

    async def wait_until_reached(self) -> None:
        """Return once the disk is below its floor (never, without a floor)."""
        if self.min_free_bytes <= 0:
            await asyncio.Event().wait()
        while not self.reached():  # noqa: ASYNC110 - free space has no event to wait for
            await asyncio.sleep(CHECK_EVERY_S)
        log.error("%s: less than %d MB free on its disk; the recording stops", self.path, self.min_free_bytes // MB)
