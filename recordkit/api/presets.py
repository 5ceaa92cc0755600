"""Routes: presets (meetings.md §3). The four presets are fixed: reads only, writes answer 405."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from recordkit.api import docs, errors
from recordkit.api.auth import authorize
from recordkit.api.envelope import ok
from recordkit.api.listing import PAGING, SEARCH
from recordkit.api.requests import checked_query
from recordkit.api.routing import described
from recordkit.api.wire import page_window, paging, preset_json, preset_summary_json
from recordkit.meetings import presets

router = APIRouter(tags=["presets"])

LIST_QUERY = (*PAGING, SEARCH)
# Documented as answering 405 only.
WRITE_REFUSED: dict[str, Any] = {"status_code": 405, "openapi_extra": described(errors=(405,))}


@router.get(
    "/{app_id}/presets",
    summary="Fetch all presets",
    responses={200: {"model": docs.PagedEnvelope[list[docs.PresetSummary]]}},
    openapi_extra=described(query=LIST_QUERY),
)
async def list_presets(request: Request, account_id: str, app_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    query = checked_query(request, LIST_QUERY)
    page_no, per_page = page_window(query)
    found, total = await presets.list_presets(
        request.app.state.services.db, app.id, search=query.get("search"), page_no=page_no, per_page=per_page
    )
    return ok([preset_summary_json(p) for p in found], paging=paging(page_no, per_page, total, len(found)))


@router.get(
    "/{app_id}/presets/{preset_id}",
    summary="Fetch details of a preset",
    responses={200: {"model": docs.Envelope[docs.PresetModel]}},
    openapi_extra=described(errors=(401, 403, 404)),
)
async def get_preset(request: Request, account_id: str, app_id: str, preset_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    preset = await presets.get_preset(request.app.state.services.db, app.id, preset_id)
    return ok(preset_json(preset))


# The SDK's preset writes exist as routes so they answer 405 like any known path with a wrong verb,
# and /openapi.json shows that they do.
@router.post("/{app_id}/presets", summary="Create a preset (not offered)", **WRITE_REFUSED)
async def create_preset() -> Response:
    raise errors.METHOD_NOT_ALLOWED


@router.patch("/{app_id}/presets/{preset_id}", summary="Update a preset (not offered)", **WRITE_REFUSED)
@router.put("/{app_id}/presets/{preset_id}", summary="Replace a preset (not offered)", **WRITE_REFUSED)
@router.delete("/{app_id}/presets/{preset_id}", summary="Delete a preset (not offered)", **WRITE_REFUSED)
async def change_preset() -> Response:
    raise errors.METHOD_NOT_ALLOWED
