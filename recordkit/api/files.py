"""Signed downloads from the built-in bucket (recordings.md §10.2): no Authorization, Range and HEAD."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from recordkit.api.errors import ApiError
from recordkit.storage.media_types import content_type

router = APIRouter(tags=["files"])

BAD_SIGNATURE = ApiError(403, "Invalid or expired signature")
NO_FILE = ApiError(404, "No file found")


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
