"""A recording's configuration: the request schemas, the merge of request, meeting and server levels
(recordings.md §8), the rules on the merged result (§6.1) and the file naming rule (§10.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recordkit.schema import Arr, Bool, Field, Int, Map, Obj, Str, ValidationFailed
from recordkit.storage.config import STORAGE_CONFIG

PREFIX_PATTERN = "^[A-Za-z0-9_-]+$"
STATUSES = ("INVOKED", "RECORDING", "UPLOADING", "UPLOADED", "ERRORED", "PAUSED")
DEFAULT_MAX_SECONDS = 86400

WATERMARK = Obj(
    (
        Field(
            "url",
            Str(format="uri", uri_schemes=("http", "https", "data"), max_length=8_000_000),
            required=True,
        ),
        Field("size", Obj((Field("width", Int(minimum=1)), Field("height", Int(minimum=1))))),
        Field("position", Str(enum=("left top", "right top", "left bottom", "right bottom"))),
    )
)
VIDEO_CONFIG = Obj(
    (
        Field("codec", Str(enum=("H264", "VP8", "VP9"))),
        Field("width", Int(minimum=1, maximum=1920)),
        Field("height", Int(minimum=1, maximum=1920)),
        Field("export_file", Bool()),
        Field("watermark", WATERMARK),
    )
)
AUDIO_CONFIG = Obj(
    (
        Field("codec", Str(enum=("MP3", "AAC"))),
        Field("channel", Str(enum=("mono", "stereo"))),
        Field("export_file", Bool()),
    )
)
BUCKET_CONFIG = Obj((Field("enabled", Bool(), required=True),))
RTMP_URL = Str(
    format="uri",
    uri_schemes=("rtmp", "rtmps"),
    scheme_message="must be a valid uri with a scheme matching the rtmps? pattern",
    max_length=2048,
)
FILE_NAME_PREFIX = Str(min_length=1, max_length=100, pattern=PREFIX_PATTERN)
MAX_SECONDS = Int(minimum=60, maximum=86400)

START_BODY = Obj(
    (
        Field("meeting_id", Str(format="uuid"), required=True),
        Field("allow_multiple_recordings", Bool(), aliases=("allow_multiple_recording",)),
        Field("max_seconds", MAX_SECONDS),
        Field("file_name_prefix", FILE_NAME_PREFIX),
        Field("video_config", VIDEO_CONFIG),
        Field("audio_config", AUDIO_CONFIG),
        Field("storage_config", STORAGE_CONFIG, nullable=True),
        Field("realtimekit_bucket_config", BUCKET_CONFIG, aliases=("dyte_bucket_config",)),
        Field("rtmp_out_config", Obj((Field("rtmp_url", RTMP_URL),))),
        Field("interactive_config", Obj((Field("type", Str(enum=("ID3",))),))),
        Field("url", Str(allow_empty=True), description="Not supported: any value is refused."),
    )
)

# The meeting-level counterpart (meetings.md §4.3).
MEETING_RECORDING_CONFIG = Obj(
    (
        Field("max_seconds", MAX_SECONDS),
        Field("file_name_prefix", FILE_NAME_PREFIX),
        Field("video_config", VIDEO_CONFIG),
        Field("audio_config", AUDIO_CONFIG),
        Field("storage_config", STORAGE_CONFIG, nullable=True),
        Field("realtimekit_bucket_config", BUCKET_CONFIG, aliases=("dyte_bucket_config",)),
        Field("live_streaming_config", Obj((Field("rtmp_url", RTMP_URL),))),
    )
)

TRACK_MEDIA_KINDS = ("audio", "video")
LAYER = Obj(
    (
        Field("file_name_prefix", FILE_NAME_PREFIX),
        # "video" is our extension (recordings.md §6.4 has audio only): each peer's video beside its audio.
        Field("media_kind", Str(enum=TRACK_MEDIA_KINDS)),
    )
)
TRACK_BODY = Obj(
    (
        Field("meeting_id", Str(format="uuid"), required=True),
        Field("layers", Map(LAYER, key_pattern=PREFIX_PATTERN, key_max_length=64, max_keys=1)),
        Field("user_ids", Arr(Str(max_length=255), min_items=1, max_items=100, unique=True)),
    )
)

ACTION_BODY = Obj((Field("action", Str(enum=("stop", "pause", "resume")), required=True),))

TRACK_STREAM_KIND = "peer"
TRACK_FILE_TEMPLATE = "{{file_name_prefix}}_{{user_id}}_{{peer_id}}_{{stream_kind}}_{{media_kind}}_{{date_time}}.webm"


class ConfigRuleBroken(Exception):
    """The merged configuration breaks a rule of §6.1; the message is the wire message's tail."""


@dataclass(frozen=True)
class Levels:
    """The validated start request, the meeting's recording_config and the operator's defaults."""

    request: dict[str, Any]
    meeting: dict[str, Any]
    server: dict[str, Any]

    def highest(self, name: str) -> tuple[bool, Any]:
        for level in (self.request, self.meeting, self.server):
            if name in level:
                return True, level[name]
        return False, None

    def merged(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for level in (self.server, self.meeting, self.request):
            given = level.get(name)
            if isinstance(given, dict):
                for key, value in given.items():
                    if isinstance(value, dict) and isinstance(result.get(key), dict):
                        result[key] = {**result[key], **value}
                    else:
                        result[key] = value
        return result

    def mentions(self, name: str) -> bool:
        return any(name in level for level in (self.request, self.meeting, self.server))


def resolve(levels: Levels) -> dict[str, Any]:
    """The effective configuration of a new recording, secrets excluded, ready to store.

    `storage_level` says which level the storage_config came from, so the caller can take that
    level's secrets with it.
    """
    video = {
        "codec": "H264",
        "width": 1280,
        "height": 720,
        "export_file": True,
        **levels.merged("video_config"),
    }
    audio = {"codec": "AAC", "channel": "stereo", "export_file": True, **levels.merged("audio_config")}
    bucket = {"enabled": True, **levels.merged("realtimekit_bucket_config")}
    storage_level, storage = "none", None
    for level_name, level in (
        ("request", levels.request),
        ("meeting", levels.meeting),
        ("server", levels.server),
    ):
        if "storage_config" in level:
            storage_level, storage = level_name, level["storage_config"]
            break
    rtmp_candidates = (
        levels.request.get("rtmp_out_config", {}).get("rtmp_url"),
        levels.meeting.get("live_streaming_config", {}).get("rtmp_url"),
        levels.server.get("live_streaming_config", {}).get("rtmp_url"),
    )
    rtmp_url = next((url for url in rtmp_candidates if url), None)
    _, max_seconds = levels.highest("max_seconds")
    _, prefix = levels.highest("file_name_prefix")
    audio_file = ("audio_config" in levels.request or "audio_config" in levels.meeting) and bool(audio["export_file"])
    return {
        "max_seconds": max_seconds or DEFAULT_MAX_SECONDS,
        "file_name_prefix": prefix,
        "video_config": video,
        "audio_config": audio,
        "audio_file": audio_file,
        "realtimekit_bucket_config": bucket,
        "storage_config": storage,
        "storage_level": storage_level,
        "rtmp_url": rtmp_url,
        "interactive_config": levels.request.get("interactive_config"),
        "allow_multiple_recordings": bool(levels.request.get("allow_multiple_recordings", False)),
    }


def check_rules(effective: dict[str, Any]) -> None:
    """Raise ConfigRuleBroken when the merged configuration cannot produce a storable file as it asks."""
    video = effective["video_config"]
    if not effective["realtimekit_bucket_config"]["enabled"] and not effective["storage_config"]:
        raise ConfigRuleBroken('"storage_config" is required when "realtimekit_bucket_config.enabled" is false')
    if not video["export_file"] and not effective["audio_file"]:
        raise ConfigRuleBroken(
            'recording would produce no file: enable "video_config.export_file" or "audio_config.export_file"'
        )
    if effective["interactive_config"] is not None and (video["codec"] != "H264" or not video["export_file"]):
        raise ConfigRuleBroken('"interactive_config" requires "video_config.codec" H264 and a video file')
    if effective["rtmp_url"] and video["codec"] != "H264":
        raise ConfigRuleBroken('"rtmp_out_config" requires "video_config.codec" H264')
    # A size larger than the frame could only be drawn scaled down, not as asked: refuse it at start
    # like the rules above. Without a video file the watermark is ignored (§9.4), so its size cannot matter.
    if video["export_file"]:
        watermark_size = (video.get("watermark") or {}).get("size") or {}
        for side in ("width", "height"):
            if watermark_size.get(side, 0) > video[side]:
                raise ConfigRuleBroken(
                    f'"video_config.watermark.size.{side}" must be less than or equal to '
                    f'"video_config.{side}" ({video[side]})'
                )


def check_url_unsupported(body: dict[str, Any]) -> None:
    """`url` asks for a custom page to render, which recordkit has no browser for (§6.1)."""
    if body.get("url") is not None:
        raise ValidationFailed("url", "is not supported")


def main_file_extension(effective: dict[str, Any]) -> str:
    """The extension of the file `download_url` serves (§9.3, §9.5)."""
    video = effective["video_config"]
    if effective["interactive_config"] is not None:
        return "tar"
    if video["export_file"]:
        return "mp4" if video["codec"] == "H264" else "webm"
    return audio_file_extension(effective)


def audio_file_extension(effective: dict[str, Any]) -> str:
    """The extension of the separate audio file (§9.3)."""
    if effective["video_config"]["codec"] != "H264":
        return "ogg"
    return "mp3" if effective["audio_config"]["codec"] == "MP3" else "m4a"


def composite_file_name(prefix: str | None, meeting_id: str, invoked_ms: int, extension: str) -> str:
    """`[<prefix>_]<meeting_id>_<invoked_ms>.<ext>` (§10.1)."""
    stem = f"{meeting_id}_{invoked_ms}"
    return f"{prefix}_{stem}.{extension}" if prefix else f"{stem}.{extension}"


def audio_file_name(config: dict[str, Any], output_file_name: str) -> str | None:
    """The separate audio file written beside the main one, if any (§9.3).

    For an audio-only recording the main file is the audio file, so there is no second one.
    """
    if not config.get("audio_file") or not config["video_config"]["export_file"]:
        return None
    return output_file_name.rsplit(".", 1)[0] + "." + audio_file_extension(config)


def track_file_name(
    prefix: str, user_id: str, peer_id: str, media_kind: str, first_packet_ms: int, extension: str
) -> str:
    """`<prefix>_<user_id>_<peer_id>_peer_<media_kind>_<date_time>.<ext>` (§10.1): one peer's track, named
    after the Unix milliseconds of its first packet. The extension is `webm`, or `mp4` for H264 video."""
    return f"{prefix}_{user_id}_{peer_id}_{TRACK_STREAM_KIND}_{media_kind}_{first_packet_ms}.{extension}"
