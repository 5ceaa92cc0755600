"""Settings from the environment and command-line flags, and the secrets kept in the data dir."""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from recordkit.meetings.media.bitstream import DEFAULT_MAX_FRAME_SIZE, FrameSize
from recordkit.roles import ALL, refuse_unshared_database

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"
# The data dir holds the database, the recordings and the keys: nobody but recordkit's own user may look in.
PRIVATE_DIR_MODE = 0o700


class UnsafeDataDir(Exception):
    """The data dir, or a secret in it, is not one recordkit can keep private; the message says what to do."""


@dataclass(frozen=True)
class Credentials:
    """Operator secrets: generated once per data dir unless the environment supplies them."""

    api_token: str
    account_id: str
    signing_key: str
    participant_token_key: str
    storage_key: str
    # PEM of the RSA key webhook bodies are signed with (meetings.md §7.3); RECORDKIT_WEBHOOK_KEY_FILE names
    # the operator's own instead.
    webhook_private_key: str


@dataclass(frozen=True)
class MediaSettings:
    """The WebRTC media plane (meetings.md §8): where it listens and how long it waits for peers."""

    # The address media sockets bind to, and the one written into ICE candidates (default: the same).
    # 0.0.0.0 binds every interface; then `advertised_host` must name the address clients can reach.
    bind_host: str = "127.0.0.1"
    advertised_host: str | None = None
    # Inclusive UDP port range for media sockets; (0, 0) lets the OS pick.
    udp_port_min: int = 0
    udp_port_max: int = 0
    join_timeout_s: float = 30.0
    silence_timeout_s: float = 15.0
    max_peers: int = 64
    # Connections one participant may hold at once (tabs, devices): one token cannot take the whole server.
    max_peers_per_participant: int = 3
    # The largest picture a reader decodes (in pixels and longer side); larger frames are refused unread.
    max_frame_size: FrameSize = DEFAULT_MAX_FRAME_SIZE


@dataclass(frozen=True)
class Settings:
    """Everything a recordkit process needs to know about where it runs."""

    data_dir: Path
    database_url: str
    credentials: Credentials
    public_url: str = "http://127.0.0.1:8787"
    invoked_timeout_s: int = 600
    # How long a recording started in an empty meeting waits for someone to join (recordings.md §7.4).
    empty_meeting_timeout_s: float = 60.0
    rate_limit_per_minute: int = 0
    # How long the built-in bucket keeps a recording's files, which is also how long their links work (§10.2).
    retention_days: float = 7.0
    server_recording_defaults: dict[str, object] = field(default_factory=dict)
    media: MediaSettings = field(default_factory=MediaSettings)
    # How many recordings this process captures at once; more wait INVOKED in the queue (0: none here).
    max_recordings: int = field(default_factory=lambda: default_max_recordings(os.cpu_count()))
    # How many uploads this process runs at once (0: none here; another process sharing the database does).
    max_uploads: int = 4
    # Free space the spool's disk keeps: below it no recording starts (503) and capturing ones stop.
    min_free_mb: int = 1024
    # Files larger than this go to external stores in parts of this size (multipart, blocks, resumable).
    upload_part_mb: int = 16
    # How long webhook deliveries (and their events) are kept once finished (meetings.md §7.1).
    webhook_retention_days: float = 7.0
    # How long a graceful shutdown may take to finish its recordings and their uploads.
    drain_timeout_s: float = 30.0
    # Multiplies every job retry delay (1 in production; tests shorten the waits).
    retry_delay_scale: float = 1.0
    # Internal networks that fetches of caller-given URLs (the watermark) may reach all the same; none by default.
    fetch_allow: tuple[IPv4Network | IPv6Network, ...] = ()
    # When set, `GET /metrics` wants it as a Bearer token; unset, the metrics are open (RECORDKIT_METRICS_TOKEN).
    metrics_token: str | None = None
    # What this process does (roles.py): everything by default.
    roles: frozenset[str] = ALL
    # The built-in bucket's folder when the fleet shares one elsewhere (`--bucket-url file:///…`).
    bucket_root: Path | None = None
    # Where this process itself answers (/metrics, /healthz), when that is not `public_url`: a worker's links
    # point at the API, its heartbeat at itself.
    listen_url: str | None = None

    @property
    def bucket_dir(self) -> Path:
        """Where the built-in bucket keeps its files."""
        return self.bucket_root or self.data_dir / "bucket"

    @property
    def link_lifetime(self) -> timedelta:
        """How long a download link works, and the built-in bucket keeps its file."""
        return timedelta(days=self.retention_days)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def sqlite_url(data_dir: Path) -> str:
    """The default database: a SQLite file in the data dir."""
    return f"sqlite+aiosqlite:///{(data_dir / 'recordkit.db').resolve()}"


def choose_database_url(data_dir: Path, given: str | None, environ: Mapping[str, str]) -> str:
    """The database of a process rooted at `data_dir`: `given` (`--database-url`), else RECORDKIT_DATABASE_URL,
    else the data dir's SQLite file."""
    return normalise_database_url(given or environ.get("RECORDKIT_DATABASE_URL") or sqlite_url(data_dir))


def normalise_database_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite://` URLs and pick the async driver for them."""
    for plain, async_form in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return async_form + url[len(plain) :]
    return url


def ensure_private_dir(path: Path) -> None:
    """Create the data dir with mode 0700, or narrow an existing one to 0700.

    An existing dir opened to others (made by hand, or a volume mounted 0755) is narrowed rather than refused:
    closing the top dir keeps every file under it out of reach whatever its own mode, without walking a bucket
    that may hold thousands of files. One recordkit's user cannot narrow is refused: it would leave recordings
    and keys readable.
    """
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & ~PRIVATE_DIR_MODE:
        return
    try:
        path.chmod(PRIVATE_DIR_MODE)
    except PermissionError as error:
        raise UnsafeDataDir(
            f"the data dir {path} is open to other users (mode {mode:04o}) and recordkit cannot change that: "
            f"run `chmod 700 {path}` as its owner, or choose another --data-dir"
        ) from error
    log.warning("the data dir %s was open to other users (mode %04o); it is 0700 now", path, mode)


def load_credentials(data_dir: Path, environ: dict[str, str] | None = None) -> tuple[Credentials, bool]:
    """Read the data dir's credentials, creating them on first use; the environment overrides.

    Returns the credentials and whether the API token or account id were generated just now.
    """
    env = os.environ if environ is None else environ
    path = data_dir / CREDENTIALS_FILE
    stored = _read_credentials(path)
    created = False
    if stored is None:
        ensure_private_dir(data_dir)
        stored = _new_credentials()
        try:
            _publish(path, stored, replace=False)
            created = True
        except FileExistsError:
            # Another process starting on the same data dir created them first: everyone uses its keys.
            stored = _read_credentials(path) or {}
    generated = created or not {"api_token", "account_id"} <= stored.keys()
    merged = {name: stored.get(name) or make() for name, make in _GENERATORS.items()}
    if merged != stored:
        # Written by an older recordkit that had fewer keys: add the missing ones, keep the rest.
        _publish(path, merged, replace=True)
    overrides = {
        "api_token": env.get("RECORDKIT_API_TOKEN"),
        "account_id": env.get("RECORDKIT_ACCOUNT_ID"),
    }
    merged.update({name: value for name, value in overrides.items() if value})
    key_file = env.get("RECORDKIT_WEBHOOK_KEY_FILE")
    if key_file:
        merged["webhook_private_key"] = webhook_key_from_file(Path(key_file))
    generated = generated and not any(overrides.values())
    return Credentials(**merged), generated


def webhook_key_from_file(path: Path) -> str:
    """The operator's webhook signing key: an unencrypted RSA private key of 2048 bits or more, in PEM."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"RECORDKIT_WEBHOOK_KEY_FILE {path}: not a readable unencrypted PEM private key") from error
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise ValueError(f"RECORDKIT_WEBHOOK_KEY_FILE {path}: webhooks are signed with RSA keys of 2048 bits or more")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode()


def _new_rsa_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode()


# Each credential's generator: only the missing ones are made (an RSA key takes ~0.1 s).
_GENERATORS: dict[str, Callable[[], str]] = {
    "api_token": lambda: "rk_" + secrets.token_urlsafe(32),
    "account_id": lambda: secrets.token_hex(16),
    "signing_key": lambda: secrets.token_hex(32),
    "participant_token_key": lambda: secrets.token_hex(32),
    "storage_key": lambda: secrets.token_urlsafe(32),
    "webhook_private_key": _new_rsa_private_key,
}


def _new_credentials() -> dict[str, str]:
    return {name: make() for name, make in _GENERATORS.items()}


def _read_credentials(path: Path) -> dict[str, str] | None:
    """The stored credentials, or None when there are none yet. A symlink is refused, not followed: one planted
    there would make recordkit sign links and tokens with keys someone else chose."""
    try:
        # O_NONBLOCK: a FIFO planted there is refused below instead of hanging the start.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeDataDir(_not_a_plain_file(path, "a symbolic link")) from error
        raise
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise UnsafeDataDir(_not_a_plain_file(path, "not a regular file"))
        stored: dict[str, str] = json.loads(file.read())
    return stored


def _not_a_plain_file(path: Path, what: str) -> str:
    return f"{path} is {what}; recordkit keeps its keys only in a plain file it wrote itself: remove it and restart"


def _publish(path: Path, credentials: dict[str, str], *, replace: bool) -> None:
    """Write the credentials to `path`, readable by this user only from their first byte.

    They go to a new file beside it, created with O_EXCL|O_NOFOLLOW and mode 0600 (so no planted file or
    symlink is written through), and only the complete file takes the name: `link` when creating, which fails
    with FileExistsError if anything is there already; `replace` when adding keys to the file we just read.
    """
    partial = path.with_name(f".{path.name}.{secrets.token_hex(8)}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(partial, flags, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps(credentials, indent=2))
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(partial, path)
        else:
            os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def build_settings(
    data_dir: Path,
    database_url: str | None = None,
    public_url: str | None = None,
    environ: dict[str, str] | None = None,
    *,
    roles: frozenset[str] = ALL,
    bucket_url: str | None = None,
    listen_url: str | None = None,
) -> tuple[Settings, bool]:
    """Settings for a process rooted at `data_dir`; see `load_credentials` for the flag returned."""
    env = os.environ if environ is None else environ
    data_dir = data_dir.resolve()
    ensure_private_dir(data_dir)
    database_url = choose_database_url(data_dir, database_url, env)
    refuse_unshared_database(roles, database_url.startswith("sqlite"))
    bucket_root = bucket_folder(bucket_url or env.get("RECORDKIT_BUCKET_URL"))
    credentials, generated = load_credentials(data_dir, env)
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        credentials=credentials,
        public_url=(public_url or env.get("RECORDKIT_PUBLIC_URL") or "http://127.0.0.1:8787").rstrip("/"),
        rate_limit_per_minute=int(env.get("RECORDKIT_RATE_LIMIT_PER_MINUTE") or 0),
        empty_meeting_timeout_s=float(env.get("RECORDKIT_EMPTY_MEETING_TIMEOUT_S") or 60),
        retention_days=days(env, "RECORDKIT_RETENTION_DAYS"),
        media=media_settings(env),
        max_recordings=int(env.get("RECORDKIT_MAX_RECORDINGS") or default_max_recordings(os.cpu_count())),
        max_uploads=int(env.get("RECORDKIT_MAX_UPLOADS") or 4),
        min_free_mb=min_free_mb(env),
        upload_part_mb=upload_part_mb(env),
        webhook_retention_days=days(env, "RECORDKIT_WEBHOOK_RETENTION_DAYS"),
        drain_timeout_s=float(env.get("RECORDKIT_DRAIN_TIMEOUT_S") or 30),
        retry_delay_scale=float(env.get("RECORDKIT_RETRY_DELAY_SCALE") or 1),
        fetch_allow=fetch_allow(env),
        metrics_token=env.get("RECORDKIT_METRICS_TOKEN") or None,
        roles=roles,
        bucket_root=bucket_root,
        listen_url=listen_url,
    )
    return settings, generated


def bucket_folder(url: str | None) -> Path | None:
    """`--bucket-url` (RECORDKIT_BUCKET_URL): `file:///absolute/dir`, the built-in bucket on a folder every
    process of the fleet mounts; None (unset) keeps it in the data dir."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme == "s3":
        raise ValueError(
            "--bucket-url s3://… is not supported yet: put the built-in bucket on a folder every process mounts "
            "(file:///…), or send recordings to your own S3 bucket with storage_config"
        )
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ValueError(
            f"--bucket-url must be file:///absolute/folder (a folder every process of the fleet shares), not {url!r}"
        )
    return Path(unquote(parts.path))


def default_max_recordings(cores: int | None) -> int:
    """Two recordings per core: a 2-person 720p30 composite costs ≈ 0.45 core (bench/recording_cost.py)."""
    return 2 * (cores or 1)


def min_free_mb(environ: Mapping[str, str]) -> int:
    """`RECORDKIT_MIN_FREE_MB`: megabytes the spool's disk keeps free (default 1024; 0 turns the floor off)."""
    text = environ.get("RECORDKIT_MIN_FREE_MB") or "1024"
    if not text.isdigit():
        raise ValueError(f"RECORDKIT_MIN_FREE_MB must be a whole number of megabytes, not {text!r}")
    return int(text)


def upload_part_mb(environ: Mapping[str, str]) -> int:
    """`RECORDKIT_UPLOAD_PART_MB`: the part size of uploads to external stores, 5-5120 MB (S3's bounds; default
    16)."""
    text = environ.get("RECORDKIT_UPLOAD_PART_MB") or "16"
    if not text.isdigit() or not 5 <= int(text) <= 5120:
        raise ValueError(f"RECORDKIT_UPLOAD_PART_MB must be a whole number of megabytes in 5-5120, not {text!r}")
    return int(text)


def days(environ: Mapping[str, str], name: str) -> float:
    """A number of days in (0, 36500] from `name`, 7 when unset: `RECORDKIT_RETENTION_DAYS` (how long the
    built-in bucket keeps files and their links work), `RECORDKIT_WEBHOOK_RETENTION_DAYS`."""
    text = environ.get(name) or "7"
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 36_500:
        raise ValueError(f"{name} must be a number of days in (0, 36500], not {text!r}")
    return value


def fetch_allow(environ: Mapping[str, str]) -> tuple[IPv4Network | IPv6Network, ...]:
    """`RECORDKIT_FETCH_ALLOW`: comma-separated CIDRs (a bare address is a /32 or /128) that fetches of
    caller-given URLs may reach although they are loopback, private or otherwise internal."""
    networks = []
    for entry in (environ.get("RECORDKIT_FETCH_ALLOW") or "").split(","):
        if not entry.strip():
            continue
        try:
            networks.append(ip_network(entry.strip()))
        except ValueError as error:
            raise ValueError(
                f"RECORDKIT_FETCH_ALLOW must be comma-separated CIDRs such as 10.0.0.0/8,fd00::/8; {error}"
            ) from error
    return tuple(networks)


def media_settings(environ: Mapping[str, str]) -> MediaSettings:
    """Media settings from `RECORDKIT_MEDIA_*` variables; `RECORDKIT_MEDIA_PORTS` is `MIN-MAX`."""
    defaults = MediaSettings()
    low, high = defaults.udp_port_min, defaults.udp_port_max
    ports = environ.get("RECORDKIT_MEDIA_PORTS")
    if ports:
        first, _, last = ports.partition("-")
        low, high = int(first), int(last or first)
        if not 0 < low <= high <= 65535:
            raise ValueError(f"RECORDKIT_MEDIA_PORTS must be MIN-MAX within 1-65535, not {ports!r}")
    return MediaSettings(
        bind_host=environ.get("RECORDKIT_MEDIA_BIND", defaults.bind_host),
        advertised_host=environ.get("RECORDKIT_MEDIA_ADVERTISE") or None,
        udp_port_min=low,
        udp_port_max=high,
        join_timeout_s=float(environ.get("RECORDKIT_MEDIA_JOIN_TIMEOUT_S", defaults.join_timeout_s)),
        silence_timeout_s=float(environ.get("RECORDKIT_MEDIA_SILENCE_TIMEOUT_S", defaults.silence_timeout_s)),
        max_peers=int(environ.get("RECORDKIT_MEDIA_MAX_PEERS", defaults.max_peers)),
        max_peers_per_participant=int(
            environ.get("RECORDKIT_MEDIA_MAX_PEERS_PER_PARTICIPANT", defaults.max_peers_per_participant)
        ),
        max_frame_size=frame_size(environ.get("RECORDKIT_MEDIA_MAX_FRAME_SIZE"), defaults.max_frame_size),
    )


def frame_size(text: str | None, default: FrameSize) -> FrameSize:
    """`RECORDKIT_MEDIA_MAX_FRAME_SIZE`: `WIDTHxHEIGHT`, each 16-16384."""
    if not text:
        return default
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and 16 <= int(width) <= 16384 and 16 <= int(height) <= 16384):
        raise ValueError(f"RECORDKIT_MEDIA_MAX_FRAME_SIZE must be WIDTHxHEIGHT, each 16-16384, not {text!r}")
    return FrameSize(int(width), int(height))
