"""The Cloudflare v4 envelope: payload at both `data` and `result` (recordings.md §3)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from recordkit.api.errors import ApiError


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(payload: Any, status: int = 200, paging: dict[str, int] | None = None) -> Response:
    """A success answer carrying `payload`."""
    body: dict[str, Any] = {"success": True, "data": payload, "result": payload, "errors": [], "messages": []}
    if paging is not None:
        body["paging"] = paging
    return JSONBody(body, status_code=status)


def error_body(status: int, message: str) -> dict[str, Any]:
    """The error envelope for one status and message."""
    item = {"code": status, "message": message}
    return {"success": False, "error": item, "errors": [item], "messages": [], "result": None}


def failure(error: ApiError) -> Response:
    """The answer for an ApiError, with its extra headers."""
    return JSONBody(error_body(error.status, error.message), status_code=error.status, headers=error.headers)
