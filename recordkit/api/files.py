"""Signed downloads from the built-in bucket (recordings.md §10.2): no Authorization, Range and HEAD."""

from __future__ import annotations

import re
import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from recordkit.api.errors import ApiError

router = APIRouter(tags=["files"])

CONTENT_TYPES = {
    "mp4": "video/mp4",
    "webm": "video/webm",
    "m4a": "audio/mp4",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "tar": "application/x-tar",
    "json": "application/json",
}
BAD_SIGNATURE = ApiError(403, "Invalid or expired signature")
NO_FILE = ApiError(404, "No file found")


# Track files are named `<prefix>_<user>_<peer>_peer_<media_kind>_<ms>.<ext>` (§10.1): an audio track file
# holds audio only; a video track file (our extension) holds video only, VP8 in WebM or H264 in MP4.
TRACK_AUDIO_FILE = re.compile(r"_peer_audio_\d+\.webm$")
TRACK_VIDEO_FILE = re.compile(r"_peer_video_\d+\.(?P<extension>webm|mp4)$")


def content_type(file_name: str) -> str:
    """The Content-Type a file is served with, by its extension (§10.2)."""
    if TRACK_AUDIO_FILE.search(file_name):
        return "audio/webm"
    video = TRACK_VIDEO_FILE.search(file_name)
    if video:
        return f"video/{video['extension']}"
    return CONTENT_TYPES.get(file_name.rsplit(".", 1)[-1].lower(), "application/octet-stream")


@router.api_route("/files/{recording_id}/{file_name}", methods=["GET", "HEAD"], include_in_schema=False)
async def download(request: Request, recording_id: str, file_name: str) -> Response:
    bucket = request.app.state.services.bucket
    expires = request.query_params.get("expires", "")
    given = request.query_params.get("signature", "")
    if not bucket.allows(recording_id, file_name, expires, given, time.time()):
        raise BAD_SIGNATURE
    path = bucket.path(recording_id, file_name)
    if path is None or not path.is_file():
        raise NO_FILE
    return FileResponse(
        path,
        media_type=content_type(file_name),
        filename=file_name,
        content_disposition_type="attachment",
    )
