"""Rewrite a spool file left by a crash into a complete one, copying packets (no re-encoding), and read how
much media a file holds.

A fragmented MP4 or WebM cut off by `kill -9` plays, but its header lacks a duration (WebM) and its last
packet may be truncated; copying its packets into a fresh file of the same format fixes both.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import av

log = logging.getLogger(__name__)

FORMATS = {".mp4": "mp4", ".webm": "webm", ".m4a": "ipod", ".mp3": "mp3", ".ogg": "ogg"}


def remux_in_place(path: Path) -> int:
    """Copy `path`'s decodable packets into a new file that replaces it; the new size in bytes.

    The original is kept when nothing could be read from it.
    """
    fixed = path.with_name(path.name + ".remux")
    copied = 0
    try:
        with av.open(str(path)) as source, av.open(str(fixed), "w", format=FORMATS.get(path.suffix)) as target:
            streams = {stream.index: target.add_stream_from_template(stream) for stream in source.streams}
            for packet in source.demux():
                if packet.dts is None or packet.stream.index not in streams:
                    continue
                packet.stream = streams[packet.stream.index]
                target.mux(packet)
                copied += 1
    except (av.FFmpegError, OSError) as error:
        log.warning("%s: could not rewrite after the crash (%s); keeping it as it is", path.name, error)
        fixed.unlink(missing_ok=True)
        return path.stat().st_size
    if copied == 0:
        fixed.unlink(missing_ok=True)
        return path.stat().st_size
    os.replace(fixed, path)
    return path.stat().st_size


def media_duration_s(path: Path) -> float | None:
    """Seconds from the first packet's start to the last packet's end over all streams, or None when the
    file cannot be read or holds no packet."""
    first_s: float | None = None
    end_s: float | None = None
    try:
        with av.open(str(path)) as source:
            for packet in source.demux():
                if packet.pts is None or packet.time_base is None:
                    continue
                start = float(packet.pts * packet.time_base)
                first_s = start if first_s is None else min(first_s, start)
                end = start + float((packet.duration or 0) * packet.time_base)
                end_s = end if end_s is None else max(end_s, end)
    except (av.FFmpegError, OSError) as error:
        log.warning("%s: could not read its duration (%s)", path.name, error)
        return None
    return None if first_s is None or end_s is None else round(end_s - first_s, 6)
