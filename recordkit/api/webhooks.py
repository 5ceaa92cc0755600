"""Routes: webhook registrations of an app (meetings.md §7.1)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from recordkit.api import docs
from recordkit.api.auth import authorize
from recordkit.api.envelope import ok
from recordkit.api.listing import PAGING
from recordkit.api.requests import checked_body, checked_query
from recordkit.api.routing import described
from recordkit.api.wire import delivery_json, page_window, paging, webhook_json
from recordkit.webhooks import registry

router = APIRouter(tags=["webhooks"])

ONE = "/{app_id}/webhooks/{webhook_id}"
WRITE_ERRORS = (400, 401, 403, 404, 413)


@router.post(
    "/{app_id}/webhooks",
    summary="Add a webhook",
    status_code=201,
    responses={201: {"model": docs.Envelope[docs.WebhookModel]}},
    openapi_extra=described(body=registry.CREATE_BODY, errors=WRITE_ERRORS),
)
async def create_webhook(request: Request, account_id: str, app_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    body = await checked_body(request, registry.CREATE_BODY)
    webhook = await registry.create_webhook(request.app.state.services.db, app.id, body)
    return ok(webhook_json(webhook), status=201)


@router.get(
    "/{app_id}/webhooks",
    summary="Fetch all webhooks of an App",
    responses={200: {"model": docs.Envelope[list[docs.WebhookModel]]}},
    openapi_extra=described(errors=(401, 403, 404)),
)
async def list_webhooks(request: Request, account_id: str, app_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    found = await registry.list_webhooks(request.app.state.services.db, app.id)
    return ok([webhook_json(webhook) for webhook in found])


@router.get(
    ONE,
    summary="Fetch details of a webhook",
    responses={200: {"model": docs.Envelope[docs.WebhookModel]}},
    openapi_extra=described(errors=(401, 403, 404)),
)
async def get_webhook(request: Request, account_id: str, app_id: str, webhook_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    return ok(webhook_json(await registry.get_webhook(request.app.state.services.db, app.id, webhook_id)))


@router.patch(
    ONE,
    summary="Edit a webhook",
    responses={200: {"model": docs.Envelope[docs.WebhookModel]}},
    openapi_extra=described(body=registry.PATCH_BODY, errors=WRITE_ERRORS),
)
async def edit_webhook(request: Request, account_id: str, app_id: str, webhook_id: str) -> Response:
    return await _write(request, account_id, app_id, webhook_id, replace=False)


@router.put(
    ONE,
    summary="Replace a webhook",
    responses={200: {"model": docs.Envelope[docs.WebhookModel]}},
    openapi_extra=described(body=registry.CREATE_BODY, errors=WRITE_ERRORS),
)
async def replace_webhook(request: Request, account_id: str, app_id: str, webhook_id: str) -> Response:
    return await _write(request, account_id, app_id, webhook_id, replace=True)


@router.delete(
    ONE,
    summary="Delete a webhook",
    responses={200: {"model": docs.Envelope[docs.WebhookModel]}},
    openapi_extra=described(errors=(401, 403, 404)),
)
async def delete_webhook(request: Request, account_id: str, app_id: str, webhook_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    db = request.app.state.services.db
    webhook = await registry.get_webhook(db, app.id, webhook_id)
    return ok(webhook_json(await registry.delete_webhook(db, webhook)))


@router.get(
    ONE + "/deliveries",
    summary="Fetch the deliveries of a webhook (recordkit extension)",
    responses={200: {"model": docs.PagedEnvelope[list[docs.WebhookDeliveryModel]]}},
    openapi_extra=described(query=PAGING, errors=(400, 401, 403, 404)),
)
async def list_deliveries(request: Request, account_id: str, app_id: str, webhook_id: str) -> Response:
    _, app = await authorize(request, account_id, app_id)
    db = request.app.state.services.db
    webhook = await registry.get_webhook(db, app.id, webhook_id)
    page_no, per_page = page_window(checked_query(request, PAGING))
    rows, total = await registry.list_deliveries(db, webhook, page_no, per_page)
    return ok([delivery_json(row) for row in rows], paging=paging(page_no, per_page, total, len(rows)))


async def _write(request: Request, account_id: str, app_id: str, webhook_id: str, *, replace: bool) -> Response:
    _, app = await authorize(request, account_id, app_id)
    db = request.app.state.services.db
    webhook = await registry.get_webhook(db, app.id, webhook_id)
    body = await checked_body(request, registry.CREATE_BODY if replace else registry.PATCH_BODY)
    return ok(webhook_json(await registry.update_webhook(db, webhook, body, replace=replace)))
