"""Loggers of the storage vendors' libraries held at INFO, whatever level the rest of the process logs at.

At DEBUG they print what must stay secret: botocore the request signatures and the access key id (and the
signatures of presigned links), google-auth the signed token assertion and `Authorization` headers in its
records' extra fields, asyncssh (at its own debug levels) raw packets with passwords.
"""

from __future__ import annotations

import logging

VENDOR_LOGGERS = ("botocore", "aiobotocore", "google", "google_auth_httplib2", "urllib3", "azure", "asyncssh")


def hold_vendor_loggers_at_info() -> None:
    """For the whole process: called once by the command line, where the process's logging is decided."""
    for name in VENDOR_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level in (logging.NOTSET, logging.DEBUG):
            logger.setLevel(logging.INFO)
