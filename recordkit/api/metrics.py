"""`GET /metrics`: this process's Prometheus metrics, outside the RealtimeKit paths (the spec has no such route).

Open unless `RECORDKIT_METRICS_TOKEN` is set, then only with that Bearer token: a scraper should not need the
API token, which can do everything, and nothing here names a recording, meeting or person.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from recordkit.api import errors
from recordkit.api.auth import bearer_token
from recordkit.fleet import recordings_by_status
from recordkit.metrics import CONTENT_TYPE

router = APIRouter(tags=["service"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    services = request.app.state.services
    expected = services.settings.metrics_token
    if expected is not None:
        token = bearer_token(request)
        if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
            raise errors.unauthorized()
    # The recordings' states are the database's, read now; every other figure is this process's own.
    services.metrics.set_recordings(await recordings_by_status(services.db))
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)
