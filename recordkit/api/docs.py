"""Response shapes for `/openapi.json`. Documentation only: routes build their JSON in api/wire.py,
and the schemathesis test checks that what they build matches what is written here."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Envelope(Open, Generic[T]):
    success: Literal[True]
    data: T
    result: T
    errors: list[Any]
    messages: list[Any]


class Paging(Open):
    total_count: int
    start_offset: int
    end_offset: int


class PagedEnvelope(Envelope[T], Generic[T]):
    paging: Paging


class ErrorItem(Open):
    code: int
    message: str


class ErrorEnvelope(Open):
    success: Literal[False]
    error: ErrorItem
    errors: list[ErrorItem]
    messages: list[Any]
    result: None


class CallerModel(Open):
    type: Literal["ORGANIZATION", "USER"]


class Reason(Open):
    reason: Literal["API_CALL", "RECORD_ON_START", "ALL_PEERS_LEFT", "INTERNAL_ERROR"]
    caller: CallerModel | None


class TrackFileUrl(Open):
    download_url: str
    user_id: str
    peer_id: str
    file_size: int


class TrackManifestUrl(Open):
    file_name: str
    download_url: str
    file_size: int


class TrackLayerUrls(Open):
    layer_name: str
    download_urls: dict[str, TrackFileUrl]
    # Our extension: the recording's manifest (each file's participant and offset from the start).
    manifest: TrackManifestUrl | None = None


class RecordingModel(Open):
    id: str
    meeting_id: str
    type: Literal["COMPOSITE", "TRACK"]
    status: Literal["INVOKED", "RECORDING", "PAUSED", "UPLOADING", "UPLOADED", "ERRORED"]
    invoked_time: str
    started_time: str | None
    stopped_time: str | None
    recording_duration: int
    output_file_name: str
    file_size: int | None
    download_url: str | list[TrackLayerUrls] | None
    download_url_expiry: str | None
    audio_download_url: str | None
    session_id: str | None
    start_reason: Reason
    stop_reason: Reason | None
    storage_config: dict[str, Any] | None


class MeetingModel(Open):
    id: str
    title: str | None
    record_on_start: bool
    live_stream_on_start: bool
    persist_chat: bool
    summarize_on_end: bool
    transcribe_on_end: bool
    ai_config: dict[str, Any] | None
    session_keep_alive_time_in_secs: float
    status: Literal["ACTIVE", "INACTIVE"]
    recording_config: dict[str, Any] | None
    created_at: str
    updated_at: str


class RecordingListItem(RecordingModel):
    meeting: MeetingModel


class TrackStarted(Open):
    recording: RecordingModel


class AppModel(Open):
    id: str
    name: str
    created_at: str


class AppCreated(Open):
    app: AppModel


class PresetSummary(Open):
    id: str
    name: str
    created_at: str
    updated_at: str


class PresetModel(PresetSummary):
    config: dict[str, Any]
    permissions: dict[str, Any]
    ui: dict[str, Any]


class ParticipantModel(Open):
    id: str
    name: str | None
    picture: str | None
    custom_participant_id: str
    preset_name: str
    created_at: str
    updated_at: str


class ParticipantWithToken(ParticipantModel):
    token: str


class ParticipantDeleted(Open):
    created_at: str
    custom_participant_id: str
    preset_id: str
    updated_at: str


class TokenModel(Open):
    token: str


class SessionModel(Open):
    id: str
    associated_id: str
    meeting_display_name: str
    type: Literal["meeting"]
    status: Literal["LIVE", "ENDED"]
    live_participants: int
    max_concurrent_participants: int
    minutes_consumed: float
    organization_id: str
    started_at: str
    ended_at: str | None
    created_at: str
    updated_at: str


class SessionList(Open):
    sessions: list[SessionModel]


class SessionParticipantModel(Open):
    id: str
    user_id: str
    custom_participant_id: str
    display_name: str | None
    preset_name: str
    joined_at: str
    left_at: str | None
    duration: float
    created_at: str
    updated_at: str


class SessionParticipantList(Open):
    participants: list[SessionParticipantModel]


class KickAll(Open):
    action: Literal["kick-all"]
    kicked_participants_count: int


class WebhookModel(Open):
    id: str
    name: str
    url: str
    events: list[str]
    enabled: bool
    created_at: str
    updated_at: str


class WebhookDeliveryModel(Open):
    id: str
    event: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: str
    finished_at: str | None
