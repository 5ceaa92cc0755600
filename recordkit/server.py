"""`recordkit serve`'s HTTP server: uvicorn, noting when SIGTERM/SIGINT arrived so that the graceful drain ends
every recording at that instant (recording/drain.py) even though it runs once the connections have closed."""

from __future__ import annotations

from types import FrameType

import uvicorn
from fastapi import FastAPI

import recordkit.compat  # noqa: F401  (DrainingServer overrides uvicorn internals: refuse other versions)
from recordkit.clock import utcnow


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.services = app.state.services

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.services.shutdown_requested_at is None:
            self.services.shutdown_requested_at = utcnow()
        super().handle_exit(sig, frame)


def serve(app: FastAPI, host: str, port: int, log_level: str) -> None:
    """Serve until SIGTERM/SIGINT, then drain: open requests and the recordings get the drain timeout."""
    drain_timeout_s = app.state.services.settings.drain_timeout_s
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=False,
        timeout_graceful_shutdown=round(drain_timeout_s),
    )
    DrainingServer(config, app).run()
