"""Participant tokens and download-link signatures in query strings never reach the access log."""

from __future__ import annotations

import logging

import pytest

from recordkit.api.access_log import RedactQuerySecrets, redact

SIG = "3f" * 32


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        (f"/files/r/a.mp4?expires=1773052209&signature={SIG}", "/files/r/a.mp4?expires=1773052209&signature=REDACTED"),
        (f"/files/r/a.mp4?signature={SIG}&expires=1", "/files/r/a.mp4?signature=REDACTED&expires=1"),
        ("/meet/m1?x=1&authToken=eyJ.abc.def&y=2", "/meet/m1?x=1&authToken=REDACTED&y=2"),
        ("/meet/m1?AUTHTOKEN=eyJ.abc.def", "/meet/m1?AUTHTOKEN=REDACTED"),
        # Starlette decodes parameter names, so these reach the same values in the app.
        (f"/files/r/a.mp4?%73ignature={SIG}", "/files/r/a.mp4?%73ignature=REDACTED"),
        ("/meet/m1?auth%54oken=eyJ.abc.def", "/meet/m1?auth%54oken=REDACTED"),
        (f"/f?signature={SIG}&signature={SIG}", "/f?signature=REDACTED&signature=REDACTED"),
        ('"GET /files/r/a.mp4?signature=abc HTTP/1.1" 403', '"GET /files/r/a.mp4?signature=REDACTED HTTP/1.1" 403'),
        # Names that only contain a secret's name, and values that do, are left alone.
        ("/x?mysignature=1&note=signature=2", "/x?mysignature=1&note=signature=2"),
        ("/x?expires=1773052209", "/x?expires=1773052209"),
        ("/files/r/signature=abc", "/files/r/signature=abc"),
    ],
)  # fmt: skip
def test_secret_query_values_are_redacted(logged: str, shown: str) -> None:
    assert redact(logged) == shown


def test_uvicorn_access_lines_are_redacted_in_their_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/files/r/a.mp4?expires=1&signature={SIG}", "1.1", 200), None,
    )  # fmt: skip

    assert RedactQuerySecrets().filter(record)

    assert SIG not in record.getMessage()
    assert '"GET /files/r/a.mp4?expires=1&signature=REDACTED HTTP/1.1" 200' in record.getMessage()
