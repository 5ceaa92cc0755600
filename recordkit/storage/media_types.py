"""The media type of a recording's file, by its name (recordings.md §10.2): what the built-in bucket serves it as,
and what external stores label it with."""

from __future__ import annotations

import re

CONTENT_TYPES = {
    "mp4": "video/mp4",
    "webm": "video/webm",
    "m4a": "audio/mp4",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "tar": "application/x-tar",
    "json": "application/json",
}


# Track files are named `<prefix>_<user>_<peer>_peer_<media_kind>_<ms>.<ext>` (§10.1): an audio track file
# holds audio only; a video track file (our extension) holds video only, VP8 in WebM or H264 in MP4.
TRACK_AUDIO_FILE = re.compile(r"_peer_audio_\d+\.webm$")
TRACK_VIDEO_FILE = re.compile(r"_peer_video_\d+\.(?P<extension>webm|mp4)$")


def content_type(file_name: str) -> str:
    """The media type of a file, by its name (§10.2)."""
    if TRACK_AUDIO_FILE.search(file_name):
        return "audio/webm"
    video = TRACK_VIDEO_FILE.search(file_name)
    if video:
        return f"video/{video['extension']}"
    return CONTENT_TYPES.get(file_name.rsplit(".", 1)[-1].lower(), "application/octet-stream")
