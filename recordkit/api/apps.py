"""Routes: apps (meetings.md §2). No app in the path: these act on the token's account."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from recordkit.api import docs
from recordkit.api.auth import authorize
from recordkit.api.envelope import ok
from recordkit.api.listing import PAGING, SEARCH, SORT_ORDER
from recordkit.api.requests import checked_body, checked_query
from recordkit.api.routing import described
from recordkit.api.wire import app_json, page_window, paging
from recordkit.meetings import apps
from recordkit.schema import Field, Obj, Str

router = APIRouter(tags=["apps"])

CREATE_BODY = Obj((Field("name", Str(min_length=1, max_length=255), required=True),))
LIST_QUERY = (*PAGING, SEARCH, SORT_ORDER)


@router.post(
    "/apps",
    summary="Create an app",
    status_code=201,
    responses={201: {"model": docs.Envelope[docs.AppCreated]}},
    openapi_extra=described(body=CREATE_BODY, errors=(400, 401, 403, 413)),
)
async def create_app(request: Request, account_id: str) -> Response:
    await authorize(request, account_id, None)
    body = await checked_body(request, CREATE_BODY)
    app = await apps.create_app(request.app.state.services.db, account_id, body["name"])
    return ok({"app": app_json(app)}, status=201)


@router.get(
    "/apps",
    summary="Fetch all apps",
    responses={200: {"model": docs.PagedEnvelope[list[docs.AppModel]]}},
    openapi_extra=described(query=LIST_QUERY, errors=(400, 401, 403)),
)
async def list_apps(request: Request, account_id: str) -> Response:
    await authorize(request, account_id, None)
    query = checked_query(request, LIST_QUERY)
    page_no, per_page = page_window(query)
    found, total = await apps.list_apps(
        request.app.state.services.db,
        account_id,
        search=query.get("search"),
        descending=query.get("sort_order", "DESC") == "DESC",
        page_no=page_no,
        per_page=per_page,
    )
    return ok([app_json(app) for app in found], paging=paging(page_no, per_page, total, len(found)))
