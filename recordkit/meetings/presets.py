"""Presets (meetings.md §3): the four fixed presets every app gets, and reading them back."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from recordkit.db.engine import Database
from recordkit.db.models import Preset
from recordkit.db.paging import fetch_page
from recordkit.errors import UnknownId

NAMES = ("group_call_host", "group_call_participant", "webinar_presenter", "webinar_viewer")


def _config(view_type: str) -> dict[str, Any]:
    return {
        "view_type": view_type,
        "max_screenshare_count": 1,
        "max_video_streams": {"desktop": 9, "mobile": 4},
        "media": {
            "video": {"quality": "hd", "frame_rate": 30},
            "screenshare": {"quality": "hd", "frame_rate": 5},
        },
    }


def _permissions(can_record: bool, can_produce: bool, host: bool) -> dict[str, Any]:
    produce = {"can_produce": "ALLOWED" if can_produce else "NOT_ALLOWED"}
    return {
        "can_record": can_record,
        "can_livestream": can_record,
        "recorder_type": "NONE",
        "is_recorder": False,
        "hidden_participant": False,
        "media": {"audio": dict(produce), "video": dict(produce), "screenshare": dict(produce)},
        "accept_waiting_requests": host,
        "can_accept_production_requests": host,
        "can_change_participant_permissions": host,
        "can_edit_display_name": True,
        "can_spotlight": host,
        "disable_participant_audio": host,
        "disable_participant_screensharing": host,
        "disable_participant_video": host,
        "kick_participant": host,
        "pin_participant": host,
        "show_participant_list": True,
        "waiting_room_type": "SKIP",
        "chat": {
            "public": {"can_send": True, "text": True, "files": True},
            "private": {"can_send": True, "can_receive": True, "text": True, "files": True},
        },
        "connected_meetings": {
            "can_alter_connected_meetings": False,
            "can_switch_connected_meetings": False,
            "can_switch_to_parent_meeting": False,
        },
        "plugins": {"can_close": host, "can_edit_config": host, "can_start": host, "config": {}},
        "polls": {"can_create": host, "can_view": True, "can_vote": True},
    }


UI: dict[str, Any] = {
    "design_tokens": {
        "theme": "dark",
        "border_radius": "rounded",
        "border_width": "thin",
        "spacing_base": 4,
        "colors": {
            "brand": {"300": "#844d1c", "400": "#9d5b22", "500": "#b76a27", "600": "#c7833f", "700": "#d09a5e"},
            "background": {"600": "#222222", "700": "#1f1f1f", "800": "#1b1b1b", "900": "#181818", "1000": "#141414"},
            "danger": "#FF2D2D",
            "success": "#62A504",
            "text": "#EEEEEE",
            "text_on_brand": "#EEEEEE",
            "video_bg": "#191919",
            "warning": "#FFCD07",
        },
    },
}

# name → (view type, can record and livestream, can produce media, host-level controls)
_DEFAULTS: dict[str, tuple[str, bool, bool, bool]] = {
    "group_call_host": ("GROUP_CALL", True, True, True),
    "group_call_participant": ("GROUP_CALL", False, True, False),
    "webinar_presenter": ("WEBINAR", True, True, True),
    "webinar_viewer": ("WEBINAR", False, False, False),
}


def default_presets(app_id: str, now: datetime) -> list[Preset]:
    """New rows for the four presets of a new app, in the order §3 lists them."""
    return [
        Preset(
            id=str(uuid.uuid4()),
            app_id=app_id,
            name=name,
            config=_config(view_type),
            permissions=_permissions(can_record, can_produce, host),
            ui=copy.deepcopy(UI),
            created_at=now,
            updated_at=now,
        )
        for name, (view_type, can_record, can_produce, host) in _DEFAULTS.items()
    ]


async def preset_names(session: AsyncSession, app_id: str) -> tuple[str, ...]:
    """The names of the app's presets, in listing order."""
    rows = await session.scalars(
        select(Preset.name).where(Preset.app_id == app_id).order_by(Preset.created_at, Preset.name)
    )
    return tuple(rows)


async def preset_by_name(session: AsyncSession, app_id: str, name: str) -> Preset:
    """The app's preset called `name`; the caller has already checked that it exists."""
    return (await session.execute(select(Preset).where(Preset.app_id == app_id, Preset.name == name))).scalar_one()


async def list_presets(
    db: Database, app_id: str, *, search: str | None, page_no: int, per_page: int
) -> tuple[list[Preset], int]:
    """One page of the app's presets (oldest first, then by name) and the total count."""
    query = select(Preset).where(Preset.app_id == app_id)
    if search is not None:
        query = query.where(func.lower(Preset.name).contains(search.lower(), autoescape=True))
    query = query.order_by(Preset.created_at, Preset.name)
    async with db.read() as session:
        rows, total = await fetch_page(session, query, page_no, per_page)
    return rows, total


async def get_preset(db: Database, app_id: str, preset_id: str) -> Preset:
    """The app's preset with this id, or 404."""
    async with db.read() as session:
        preset = await session.get(Preset, preset_id)
    if preset is None or preset.app_id != app_id:
        raise UnknownId("preset", preset_id)
    return preset
