"""Secrets that travel in query strings stay out of the access log.

uvicorn's access log prints each request's path with its raw query string. Two parameters there are
credentials: the join page's `authToken=` (a participant token) and the built-in bucket's `signature=` (a
download link that works for days). Their values are replaced by `REDACTED`; the rest of the line stays.
A parameter name is compared after percent-decoding and case-folding, so `%73ignature=` or `AuthToken=` — which
reach the same value in the app, or differ from it only in case — are hidden too.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
SECRET_PARAMETERS = frozenset({"authtoken", "signature"})

# One `name=value` pair of a query string: after `?` or `&`, up to the next `&`, space or quote.
_QUERY_PAIR = re.compile(r"(?P<lead>[?&])(?P<name>[^=&\s\"]*)=(?P<value>[^&\s\"]*)")


def redact(text: str) -> str:
    """`text` with the value of every secret query parameter replaced by `REDACTED`."""

    def hide(pair: re.Match[str]) -> str:
        if unquote_plus(pair["name"]).casefold() not in SECRET_PARAMETERS:
            return pair[0]
        return f"{pair['lead']}{pair['name']}=REDACTED"

    return _QUERY_PAIR.sub(hide, text)


class RedactQuerySecrets(logging.Filter):
    """Redacts a log record's message and its string arguments (where uvicorn puts the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def install() -> None:
    """Put the filter on uvicorn's access logger, once per process however many apps are built."""
    access_log = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, RedactQuerySecrets) for existing in access_log.filters):
        access_log.addFilter(RedactQuerySecrets())
