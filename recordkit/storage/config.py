"""`storage_config` (recordings.md §10.4): its schema, per-type required fields, and secret splitting."""

from __future__ import annotations

from typing import Any

from recordkit.schema import Field, Int, Obj, Str, ValidationFailed

TYPES = ("aws", "azure", "digitalocean", "gcs", "sftp", "cloudflare")
SECRET_FIELDS = ("access_key", "secret", "password", "private_key")
PUBLIC_FIELDS = (
    "type",
    "bucket",
    "region",
    "path",
    "host",
    "port",
    "username",
    "auth_method",
    "endpoint",
    "account_id",
    "host_key",
)

STORAGE_CONFIG = Obj(
    (
        Field("type", Str(enum=TYPES), required=True),
        Field("access_key", Str(secret=True, max_length=8192)),
        Field("secret", Str(secret=True, allow_empty=True, max_length=65536), aliases=("secret_key",)),
        Field("bucket", Str(max_length=1024)),
        Field("region", Str(allow_empty=True, max_length=255)),
        Field("path", Str(allow_empty=True, max_length=1024)),
        Field("host", Str(max_length=255)),
        Field("port", Int(minimum=1, maximum=65535)),
        Field("username", Str(max_length=255)),
        Field("auth_method", Str(enum=("KEY", "PASSWORD"))),
        Field("password", Str(secret=True, max_length=8192)),
        Field("private_key", Str(secret=True, max_length=65536)),
        Field("endpoint", Str(format="uri", uri_schemes=("http", "https"), max_length=2048)),
        Field("account_id", Str(max_length=255)),
        Field("host_key", Str(max_length=8192)),
    )
)

# Per type, the fields that must be present and non-empty, in the order the table lists them.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "aws": ("access_key", "secret", "bucket", "region"),
    "azure": ("access_key", "bucket"),
    "digitalocean": ("access_key", "secret", "bucket", "region"),
    "gcs": ("secret", "bucket"),
    "sftp": ("host", "username", "auth_method"),
    "cloudflare": ("access_key", "secret", "bucket", "account_id"),
}


def check_required(config: dict[str, Any], path: str = "storage_config") -> None:
    """Raise ValidationFailed for the first field the chosen `type` needs and lacks."""
    kind = config["type"]
    needed = list(_REQUIRED[kind])
    if kind == "gcs" and config.get("endpoint"):
        needed.remove("secret")
    if kind == "sftp":
        needed.append("private_key" if config.get("auth_method") == "KEY" else "password")
    for name in needed:
        if name not in config:
            raise ValidationFailed(f"{path}.{name}", "is required")
        if config[name] == "":
            raise ValidationFailed(f"{path}.{name}", "is not allowed to be empty")


def split_secrets(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate a validated storage_config into what may be echoed and what is write-only."""
    public = {name: config[name] for name in PUBLIC_FIELDS if name in config}
    secret = {name: config[name] for name in SECRET_FIELDS if name in config}
    return public, secret
