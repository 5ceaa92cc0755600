"""The tables: one model per thing the API names."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

UUID_LEN = 36


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(),
    }


class App(Base):
    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]

    __table_args__ = (Index(None, "account_id", "created_at"),)


class Preset(Base):
    __tablename__ = "presets"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(UUID_LEN))
    name: Mapped[str] = mapped_column(String(255))
    config: Mapped[dict[str, Any]]
    permissions: Mapped[dict[str, Any]]
    ui: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index(None, "app_id", "name", unique=True),)


class Meeting(Base):
    __tablename__ = "meetings"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(UUID_LEN))
    title: Mapped[str | None] = mapped_column(String(255))
    record_on_start: Mapped[bool] = mapped_column(Boolean, default=False)
    live_stream_on_start: Mapped[bool] = mapped_column(Boolean, default=False)
    persist_chat: Mapped[bool] = mapped_column(Boolean, default=False)
    summarize_on_end: Mapped[bool] = mapped_column(Boolean, default=False)
    transcribe_on_end: Mapped[bool] = mapped_column(Boolean, default=False)
    ai_config: Mapped[dict[str, Any] | None]
    session_keep_alive_time_in_secs: Mapped[float] = mapped_column(Float, default=60)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    # The public part of recording_config; its storage secrets live encrypted beside it.
    recording_config: Mapped[dict[str, Any] | None]
    recording_secrets: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index(None, "app_id", "created_at"),)


class Participant(Base):
    __tablename__ = "participants"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(UUID_LEN))
    meeting_id: Mapped[str] = mapped_column(String(UUID_LEN))
    custom_participant_id: Mapped[str] = mapped_column(String(255))
    preset_id: Mapped[str] = mapped_column(String(UUID_LEN))
    preset_name: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    picture: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index(None, "meeting_id", "created_at"),)


class MeetingSession(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(UUID_LEN))
    meeting_id: Mapped[str] = mapped_column(String(UUID_LEN))
    status: Mapped[str] = mapped_column(String(16))
    live_participants: Mapped[int] = mapped_column(Integer, default=0)
    max_concurrent_participants: Mapped[int] = mapped_column(Integer, default=0)
    minutes_consumed: Mapped[float] = mapped_column(Float, default=0)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # When the last participant left; the session ends when the keep-alive time has passed since.
    emptied_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    __table_args__ = (Index(None, "app_id", "started_at"), Index(None, "meeting_id", "status"))


class SessionPeer(Base):
    __tablename__ = "session_peers"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(UUID_LEN))
    app_id: Mapped[str] = mapped_column(String(UUID_LEN))
    meeting_id: Mapped[str] = mapped_column(String(UUID_LEN))
    participant_id: Mapped[str] = mapped_column(String(UUID_LEN))
    custom_participant_id: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    preset_name: Mapped[str] = mapped_column(String(255))
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    __table_args__ = (Index(None, "session_id", "joined_at"),)


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(UUID_LEN))
    meeting_id: Mapped[str] = mapped_column(String(UUID_LEN))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    invoked_time: Mapped[datetime]
    started_time: Mapped[datetime | None]
    stopped_time: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    paused_total_ms: Mapped[int] = mapped_column(Integer, default=0)
    output_file_name: Mapped[str] = mapped_column(Text)
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    download_url: Mapped[Any | None] = mapped_column(JSON)
    download_url_expiry: Mapped[datetime | None]
    audio_download_url: Mapped[str | None] = mapped_column(Text)
    session_id: Mapped[str | None] = mapped_column(String(UUID_LEN))
    start_reason: Mapped[dict[str, Any]]
    stop_reason: Mapped[dict[str, Any] | None]
    allow_multiple: Mapped[bool] = mapped_column(Boolean, default=False)
    # The effective configuration resolved at start (recordings.md §8), secrets removed.
    config: Mapped[dict[str, Any]]
    storage_config: Mapped[dict[str, Any] | None]
    storage_secrets: Mapped[str | None] = mapped_column(Text)
    # Why an ERRORED recording failed, naming the step (for operators; stop_reason never changes after capture).
    error_reason: Mapped[str | None] = mapped_column(Text)
    # The process whose recorder captures this recording, and until when its claim holds unless renewed.
    owner_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    # What the API (or a session's end) asked of the recorder, when, and why; the owner applies it and
    # writes what it applied. A stop's outcome is the move to UPLOADING itself.
    wanted_state: Mapped[str | None] = mapped_column(String(16))
    wanted_at: Mapped[datetime | None]
    wanted_reason: Mapped[dict[str, Any] | None]
    applied_state: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime]

    __table_args__ = (
        # status rides along so SQLite (which keeps no statistics) can filter a sorted walk by the index alone.
        Index(None, "app_id", "invoked_time", "id", "status"),
        Index(None, "app_id", "status", "invoked_time", "id"),
        # Narrow enough that counting one status of a large app stays cheap.
        Index(None, "app_id", "status"),
        Index(None, "meeting_id", "status"),
        # The reconciler's walk over unfinished recordings of every app.
        Index(None, "status", "lease_expires_at"),
    )


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(UUID_LEN))
    name: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index(None, "app_id", "created_at"),)


class WebhookEvent(Base):
    """The outbox: one row per event, written in the transaction of the change it announces."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(String(UUID_LEN))
    # None for the meeting events.
    recording_id: Mapped[str | None] = mapped_column(String(UUID_LEN))
    event: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "dispatched_at", "id"),)


class QueuedJob(Base):
    """A job of the embedded runner (SQLite): written in the transaction of the change that causes it.

    PostgreSQL deployments keep their jobs in procrastinate's tables instead.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(128))
    recording_id: Mapped[str] = mapped_column(String(UUID_LEN))
    # todo → doing → succeeded | failed; back to todo for a retry.
    status: Mapped[str] = mapped_column(String(16))
    # Attempts finished (failed, or cut short by a crash); the running one is attempts + 1.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime]
    taken_by: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index(None, "status", "run_after", "id"), Index(None, "recording_id", "kind"))


class StoreUpload(Base):
    """A recording's files going to one external destination (`storage_config`): what was tried, what failed
    last (its destination and error class, never a secret) and, per file, what the target confirmed."""

    __tablename__ = "store_uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(String(UUID_LEN))
    # Where, in words without secrets: `aws bucket team-recordings`.
    destination: Mapped[str] = mapped_column(String(1024))
    # pending → confirmed | failed.
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # {file_name: {"key": ..., "size": ..., "checksum": ...}} for every file the target confirmed.
    confirmed: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("recording_id", "destination"),)


class WebhookDelivery(Base):
    """One event to one webhook (meetings.md §7.2): its id is the `rtk-uuid` every attempt carries. Deliveries of
    one webhook and stream (a recording) go out in event order, each after the one before it ended."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(UUID_LEN))
    app_id: Mapped[str] = mapped_column(String(UUID_LEN))
    event_id: Mapped[int] = mapped_column(Integer)  # the outbox row (webhook_events.id), also the order
    event: Mapped[str] = mapped_column(String(64))
    stream: Mapped[str] = mapped_column(String(64))
    # PENDING → DELIVERED | FAILED.
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime]
    # A process sending it holds it until then; past it, another may send it again (same rtk-uuid).
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index(None, "status", "webhook_id", "stream", "event_id"),
        Index(None, "webhook_id", "created_at"),
    )


class Node(Base):
    """A running recordkit process, as its heartbeat (`fleet.py`) last wrote it: who it is and how much of its
    capture budget is in use. A process that stops cleanly deletes its row; a silent one is forgotten later."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # the node id it writes on the rows it owns
    role: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)  # its public URL: where its API and /metrics answer
    # Capture units (recording/capacity.py: a composite 4, a track recording 1) held, and its budget.
    capacity_used: Mapped[int] = mapped_column(Integer)
    capacity_total: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    # A media node's address for media (ICE host and UDP ports), as peers are told it; None for other roles.
    media_address: Mapped[str | None] = mapped_column(Text)


class MediaRoom(Base):
    """Which media node hosts a meeting's room: chosen when the first connection (a peer or a recorder) asks,
    kept while that node beats, chosen again once it has gone silent (`meetings/media/placement.py`)."""

    __tablename__ = "media_rooms"

    meeting_id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(Text)  # the node's public URL: its signalling routes are under /meet
    since: Mapped[datetime]
