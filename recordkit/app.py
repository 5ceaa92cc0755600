"""The composition root: builds the ASGI app and wires the concrete parts together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from recordkit import __version__
from recordkit.api import (
    access_log,
    apps,
    docs,
    errors,
    files,
    join_page,
    meet,
    meetings,
    metrics,
    participants,
    presets,
    recordings,
    sessions,
    webhooks,
)
from recordkit.api.auth import token_verifies
from recordkit.api.envelope import failure, ok
from recordkit.api.meet_forwarding import MeetForwarder, MeetForwarding
from recordkit.api.ratelimit import RateLimit, RateLimiter
from recordkit.api.routing import mount
from recordkit.clock import utcnow
from recordkit.config import MediaSettings, Settings
from recordkit.db.bus import Bus, LocalBus, PostgresBus
from recordkit.db.engine import Database
from recordkit.errors import DomainError
from recordkit.fleet import Heartbeat
from recordkit.jobs.dispatcher import Dispatcher, JobEngine
from recordkit.jobs.embedded import EmbeddedJobs
from recordkit.jobs.procrastinated import ProcrastinateJobs
from recordkit.jobs.retention import prune_forever
from recordkit.meetings.apps import AppDirectory
from recordkit.meetings.media.placement import MediaPlacement
from recordkit.meetings.media.plane import MediaPlane
from recordkit.meetings.sessions import SessionEvents, sweep_forever
from recordkit.meetings.tokens import ParticipantTokens
from recordkit.metrics import Metrics
from recordkit.node import new_node_id
from recordkit.recorder.composite import RecorderSettings
from recordkit.recorder.spool import MB, DiskFloor
from recordkit.recording.capacity import COMPOSITE_UNITS, TRACK_UNITS, CaptureSlots
from recordkit.recording.drain import drain
from recordkit.recording.ownership import LeaseTimes, Recorders
from recordkit.recording.reconciler import Reconciler
from recordkit.recording.reports import CaptureReports
from recordkit.recording.service import Recordings, StopTimedOut
from recordkit.recording.sources import MeetingMedia
from recordkit.recording.track_worker import RECORD_TRACKS
from recordkit.recording.upload import UPLOAD
from recordkit.recording.work import WorkContext
from recordkit.recording.worker import RECORD
from recordkit.roles import API, MEDIA, WORKER, role_name
from recordkit.schema import ValidationFailed
from recordkit.storage.bucket import LocalBucket
from recordkit.storage.retention import delete_expired_forever
from recordkit.storage.secrets import SecretBox
from recordkit.storage.store import UploadSettings
from recordkit.webhooks.delivery import WebhookDispatcher, prune_deliveries_forever
from recordkit.webhooks.signing import WebhookSigner

log = logging.getLogger(__name__)

JOB_KINDS = (RECORD, RECORD_TRACKS, UPLOAD)
RECONCILE_EVERY_S = 3.0
# In a fleet the reconciler is also how a dead worker's recordings are noticed and handed on (takeover): often.
FLEET_RECONCILE_EVERY_S = 1.0
# A fleet's leases are short so that a worker on another machine, whose death no pid tells, is replaced in seconds.
FLEET_LEASE = LeaseTimes(lease_s=3.0, renew_every_s=1.0)
FINISHED_JOBS_KEPT = timedelta(days=7)


@dataclass
class Services:
    """Everything a request handler or a job may reach, built once per app."""

    settings: Settings
    node_id: str
    db: Database
    bus: Bus
    jobs: Dispatcher
    # Runs the jobs; None when a caller (a test) brought a dispatcher that only collects them.
    engine: JobEngine | None
    tokens: ParticipantTokens
    secrets: SecretBox
    recordings: Recordings
    reports: CaptureReports
    recorders: Recorders
    reconciler: Reconciler
    work: WorkContext
    session_events: SessionEvents
    media: MediaPlane
    apps: AppDirectory
    bucket: LocalBucket
    webhook_signer: WebhookSigner
    webhooks: WebhookDispatcher
    metrics: Metrics
    heartbeat: Heartbeat
    # Sends signalling for meetings hosted on other media nodes there; None for a process doing everything alone.
    forwarder: MeetForwarder | None
    # When SIGTERM/SIGINT arrived (set by the server): recordings end at that instant.
    shutdown_requested_at: datetime | None = None


class NormalisePath:
    """A trailing slash means the same route (recordings.md §1), without a redirect; a NUL in the path
    matches no route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and "\x00" in path:
            # No id contains NUL, and PostgreSQL cannot even compare one: no such route.
            await failure(errors.NO_ROUTE)(scope, receive, send)
            return
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            trimmed = path.rstrip("/") or "/"
            scope = {**scope, "path": trimmed, "raw_path": trimmed.encode()}
        await self.app(scope, receive, send)


def build_services(settings: Settings, dispatcher: Dispatcher | None = None) -> Services:
    creds = settings.credentials
    roles = settings.roles
    node_id = new_node_id()
    db = Database(settings.database_url)
    bus: Bus = LocalBus() if settings.is_sqlite else PostgresBus(settings.database_url)
    metrics = Metrics()
    engine = None if dispatcher is not None else _job_engine(settings, db, bus, node_id, metrics)
    tokens = ParticipantTokens(creds.participant_token_key)
    jobs: Dispatcher = dispatcher or engine  # type: ignore[assignment]
    secrets = SecretBox(creds.storage_key)
    spool_floor = DiskFloor(settings.data_dir / "spool", settings.min_free_mb * MB)
    recordings = Recordings(db, jobs, bus, secrets, settings.server_recording_defaults, spool_floor)
    reports = CaptureReports(db, jobs, bus)
    # A fleet's processes share the data dir (credentials, spool): a recording can go on on another worker.
    shared_data_dir = None if settings.is_sqlite else settings.data_dir
    recorders = Recorders(
        db, bus, reports, node_id, LeaseTimes() if settings.is_sqlite else FLEET_LEASE, shared_data_dir=shared_data_dir
    )
    stalled = partial(engine.retry_stalled, ["upload"]) if isinstance(engine, ProcrastinateJobs) else None
    bucket = LocalBucket(settings.bucket_dir, creds.signing_key, settings.public_url)
    reconciler = Reconciler(
        db, bus, jobs, reports, recorders, settings.data_dir, bucket, settings.invoked_timeout_s, stalled
    )
    session_events = SessionEvents(started=recordings.on_session_started, ended=recordings.on_session_ended)
    media = MediaPlane(db, session_events, settings.media)
    hosts_media = MEDIA in roles
    # One process doing everything on SQLite records from its own rooms; otherwise rooms are placed on media nodes.
    placement = (
        None if settings.is_sqlite else MediaPlacement(db, node_id, settings.public_url if hosts_media else None)
    )
    recorder_settings = RecorderSettings(
        empty_start_min_s=settings.empty_meeting_timeout_s,
        fetch_allow=settings.fetch_allow,
        min_free_bytes=settings.min_free_mb * MB,
    )
    webhook_signer = WebhookSigner(creds.webhook_private_key)
    capture_slots = CaptureSlots(settings.max_recordings)
    return Services(
        settings=settings,
        node_id=node_id,
        db=db,
        bus=bus,
        jobs=jobs,
        engine=engine,
        tokens=tokens,
        secrets=secrets,
        recordings=recordings,
        reports=reports,
        recorders=recorders,
        reconciler=reconciler,
        work=WorkContext(
            reports=reports,
            recorders=recorders,
            sources=MeetingMedia(
                media if hosts_media else None, placement, tokens, creds.account_id, settings.media.max_frame_size
            ),
            bucket=bucket,
            settings=settings,
            recorder_settings=recorder_settings,
            capture_slots=capture_slots,
            secrets=secrets,
            upload_settings=UploadSettings(part_size=settings.upload_part_mb * MB),
            metrics=metrics,
        ),
        session_events=session_events,
        media=media,
        apps=AppDirectory(db),
        bucket=bucket,
        webhook_signer=webhook_signer,
        webhooks=WebhookDispatcher(db, webhook_signer, metrics),
        metrics=metrics,
        forwarder=(
            MeetForwarder(db, placement, media if hosts_media else None)
            if placement is not None and roles & {API, MEDIA}
            else None
        ),
        heartbeat=Heartbeat(
            db,
            node_id,
            role_name(roles),
            # Others find an API or media node at its public URL, and a worker (whose public URL is the API's)
            # where it answers itself.
            settings.public_url if roles & {API, MEDIA} else settings.listen_url or settings.public_url,
            capture_slots,
            media_address(settings.media) if hosts_media else None,
        ),
    )


def media_address(media: MediaSettings) -> str:
    """Where a media node's peers send media, as its `nodes` row registers it: ICE host and UDP ports."""
    ports = f"{media.udp_port_min}-{media.udp_port_max}" if media.udp_port_max else "any"
    return f"{media.advertised_host or media.bind_host or '*'} udp {ports}"


def _job_engine(settings: Settings, db: Database, bus: Bus, node_id: str, metrics: Metrics) -> JobEngine:
    """The embedded runner on SQLite (one process owns the file); procrastinate on PostgreSQL."""
    # A worker takes no more composites than its budget holds, so the rest wait in the queue for any worker with
    # room; as many track recordings as could capture at once if all were tracks (`CaptureSlots` weighs them).
    concurrency = {
        "record": settings.max_recordings,
        "record_tracks": settings.max_recordings * COMPOSITE_UNITS // TRACK_UNITS,
        "upload": settings.max_uploads,
    }
    if WORKER not in settings.roles:
        concurrency = dict.fromkeys(concurrency, 0)  # it only queues jobs, for the workers
    scale = settings.retry_delay_scale
    if settings.is_sqlite:
        return EmbeddedJobs(db, bus, JOB_KINDS, node_id, concurrency, metrics=metrics, retry_scale=scale)
    return ProcrastinateJobs(
        settings.database_url,
        JOB_KINDS,
        concurrency,
        metrics=metrics,
        retry_scale=scale,
        graceful_s=settings.drain_timeout_s,
    )


def create_app(settings: Settings, dispatcher: Dispatcher | None = None) -> FastAPI:
    """The recordkit ASGI app. The database must already be migrated (`db.migrate.upgrade`)."""
    services = build_services(settings, dispatcher)
    roles = settings.roles

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.bus.start()
        if services.engine is not None:
            await services.engine.start(services.work)
        # What a crash left behind is recovered before the API takes new work.
        await services.reconciler.pass_once()
        await services.reconciler.remove_leftover_parts()
        reconcile_every_s = RECONCILE_EVERY_S if settings.is_sqlite else FLEET_RECONCILE_EVERY_S
        background = [
            asyncio.create_task(services.reconciler.run_forever(reconcile_every_s)),
            asyncio.create_task(services.recorders.renew_forever()),
            asyncio.create_task(services.heartbeat.beat_forever()),
        ]
        if roles & {API, MEDIA}:
            # Emptied sessions end when their keep-alive runs out, even if nobody calls the API.
            background.append(asyncio.create_task(sweep_forever(services.db, 1.0, services.session_events)))
        if API in roles:
            background.append(asyncio.create_task(delete_expired_forever(services.bucket, services.recordings)))
        if services.engine is not None:
            background.append(asyncio.create_task(prune_forever(services.engine, FINISHED_JOBS_KEPT)))
        if services.engine is not None and WORKER in roles:
            # A test that only collects jobs brings no engine, and sends no webhooks either.
            background.append(asyncio.create_task(services.webhooks.run_forever()))
            kept = timedelta(days=settings.webhook_retention_days)
            background.append(asyncio.create_task(prune_deliveries_forever(services.db, kept)))
        try:
            yield
        finally:
            if services.engine is not None:
                at = services.shutdown_requested_at or utcnow()
                await drain(services.db, services.engine, services.recorders, at, settings.drain_timeout_s)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await services.heartbeat.leave()
            if services.forwarder is not None:
                await services.forwarder.close()
            await services.media.close()
            await services.bus.close()
            await services.db.close()

    app = FastAPI(
        title="recordkit",
        version=__version__,
        description="Self-hosted recordings with the Cloudflare RealtimeKit API.",
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.services = services
    access_log.install()
    if API in roles:
        for routes in (recordings, apps, presets, meetings, participants, sessions, webhooks):
            mount(app, routes.router)
        join_page.install(app)
        app.include_router(files.router)
    if MEDIA in roles:
        app.include_router(meet.router)  # at the host root, like the join page (meetings.md §8)
    app.include_router(metrics.router)  # outside the RealtimeKit paths: not part of the spec
    _add_error_handlers(app)

    @app.get("/healthz", include_in_schema=True, tags=["service"])
    async def healthz() -> Response:
        return ok({"status": "ok"})

    @app.get("/.well-known/webhooks.json", include_in_schema=True, tags=["webhooks"])
    async def webhook_public_key() -> Response:
        """The key webhook signatures verify against (meetings.md §7.3)."""
        return JSONResponse(
            {"success": True, "data": {"publicKey": services.webhook_signer.public_key_pem}, "message": ""}
        )

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    if services.forwarder is not None:
        app.add_middleware(MeetForwarding, forwarder=services.forwarder)
    if settings.rate_limit_per_minute:
        # Added after (so around) the forwarding: a call is limited where it comes in, forwarded or not.
        verifies = partial(token_verifies, api_token=settings.credentials.api_token, tokens=services.tokens)
        app.add_middleware(RateLimit, limiter=RateLimiter(settings.rate_limit_per_minute), verifies=verifies)
    app.add_middleware(NormalisePath)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.ApiError)
    async def on_api_error(_request: Request, exc: errors.ApiError) -> Response:
        return failure(exc)

    @app.exception_handler(DomainError)
    async def on_refused(_request: Request, exc: DomainError) -> Response:
        return failure(errors.from_domain(exc))

    @app.exception_handler(StopTimedOut)
    async def on_stop_timeout(_request: Request, exc: StopTimedOut) -> Response:
        # The stop stands and will be carried out; the caller cannot be told the final figures yet.
        return failure(errors.INTERNAL)

    @app.exception_handler(ValidationFailed)
    async def on_invalid(_request: Request, exc: ValidationFailed) -> Response:
        return failure(errors.bad_request(exc.detail))

    @app.exception_handler(HTTPException)
    async def on_http(_request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            return failure(errors.METHOD_NOT_ALLOWED)
        if exc.status_code == 404:
            return failure(errors.NO_ROUTE)
        return failure(errors.ApiError(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def on_request_validation(_request: Request, exc: RequestValidationError) -> Response:
        return failure(errors.bad_request("request is not valid"))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected failure on %s %s", request.method, request.url.path, exc_info=exc)
        return failure(errors.INTERNAL)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for operations in schema["paths"].values():
        for operation in operations.values():
            # FastAPI documents a 422 for path parameters; recordkit never answers one.
            operation.get("responses", {}).pop("422", None)
    error_schema = docs.ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorEnvelope"] = error_schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components = schema["components"]
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    schema["security"] = [{"bearer": []}]
    app.openapi_schema = schema
    return schema
