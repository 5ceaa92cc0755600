"""Reading requests: the JSON body with its size limit, validated bodies and query strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from starlette.requests import Request

from recordkit.api import errors
from recordkit.schema import Obj, QueryParam, parse_query, validate_body

MAX_BODY_BYTES = 1024 * 1024


async def json_body(request: Request) -> Any:
    """The parsed JSON body; 413 past 1 MiB, 400 when it is not JSON. An empty body reads as `{}`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise errors.body_too_large()
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > MAX_BODY_BYTES:
            raise errors.body_too_large()
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.bad_request("request body is not valid JSON") from None


async def checked_body(request: Request, schema: Obj) -> dict[str, Any]:
    """The body, validated against `schema` (a ValidationFailed becomes a 400)."""
    return validate_body(schema, await json_body(request))


def checked_query(request: Request, spec: Sequence[QueryParam]) -> dict[str, Any]:
    """The query string, validated against `spec`."""
    return parse_query(request.query_params.multi_items(), spec)
