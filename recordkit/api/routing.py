"""How routes are mounted and described: both URL prefixes, and OpenAPI text from our schemas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI

from recordkit.schema import Obj, QueryParam, json_schema, query_parameters

PREFIXES = ("/client/v4/accounts/{account_id}/realtime/kit", "/accounts/{account_id}/realtime/kit")

ERROR_STATUSES = {
    "400": "Invalid input",
    "401": "Missing or invalid token",
    "403": "Token not allowed here",
    "404": "Unknown app or resource",
    "405": "Method not allowed",
    "409": "Conflicts with the current state",
    "413": "Body over 1 MiB",
    "503": "Not enough free disk space to record now (see retry-after)",
}


def mount(app: FastAPI, router: APIRouter) -> None:
    """Serve `router`'s routes under both prefixes, with identical behaviour."""
    for prefix in PREFIXES:
        app.include_router(router, prefix=prefix)


def described(
    body: Obj | None = None,
    query: Sequence[QueryParam] = (),
    errors: Sequence[int] = (400, 401, 403, 404),
) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its input by hand through our schemas."""
    extra: dict[str, Any] = {
        "responses": {
            str(status): {
                "description": ERROR_STATUSES[str(status)],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
            }
            for status in errors
        }
    }
    if body is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": json_schema(body)}},
        }
    if query:
        extra["parameters"] = query_parameters(query)
    return extra
