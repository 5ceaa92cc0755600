"""The `Store` for a recording's `storage_config` (recordings.md §10.4), by its `type`.

Each vendor's library is imported when a recording first needs it: a service that never uploads to Azure never
loads the Azure SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recordkit.storage.store import Store, UploadSettings

S3_TYPES = ("aws", "digitalocean", "cloudflare")


def open_store(config: Mapping[str, Any], settings: UploadSettings) -> Store:
    """The store for `config` (public fields and secrets together); no I/O until its first call."""
    kind = config["type"]
    if kind in S3_TYPES:
        from recordkit.storage.s3 import S3Store

        return S3Store(config, settings)
    if kind == "azure":
        from recordkit.storage.azure import AzureStore

        return AzureStore(config, settings)
    if kind == "gcs":
        from recordkit.storage.gcs import GcsStore

        return GcsStore(config, settings)
    if kind == "sftp":
        from recordkit.storage.sftp import SftpStore

        return SftpStore(config, settings)
    raise ValueError(f"no store for storage_config type {kind!r}")
