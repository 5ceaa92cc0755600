"""The storage vendors' loggers never print at DEBUG, even when the root logger does."""

from __future__ import annotations

import logging

import pytest

from recordkit.vendor_logs import VENDOR_LOGGERS, hold_vendor_loggers_at_info


def test_vendor_loggers_stay_at_info_under_a_debug_root(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VENDOR_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger(), "level", logging.DEBUG)
    assert logging.getLogger("botocore.auth").isEnabledFor(logging.DEBUG), "the premise: DEBUG would print"
    hold_vendor_loggers_at_info()
    for name in ("botocore.auth", "aiobotocore.endpoint", "google.auth.transport", "azure.core.pipeline", "asyncssh"):
        logger = logging.getLogger(name)
        logger.manager._clear_cache()
        assert not logger.isEnabledFor(logging.DEBUG), name
        assert logger.isEnabledFor(logging.INFO), name
