"""The four default presets (meetings.md §3) as rows, without a database."""

from __future__ import annotations

import pytest

from recordkit.clock import utcnow
from recordkit.meetings.presets import NAMES, default_presets

TABLE = {
    # name: (view_type, can_record, can_livestream, can_produce)
    "group_call_host": ("GROUP_CALL", True, True, "ALLOWED"),
    "group_call_participant": ("GROUP_CALL", False, False, "ALLOWED"),
    "webinar_presenter": ("WEBINAR", True, True, "ALLOWED"),
    "webinar_viewer": ("WEBINAR", False, False, "NOT_ALLOWED"),
}


def test_a_new_app_gets_the_four_presets_in_listed_order() -> None:
    now = utcnow()
    rows = default_presets("app-1", now)
    assert [row.name for row in rows] == list(NAMES) == list(TABLE)
    assert {row.app_id for row in rows} == {"app-1"}
    assert len({row.id for row in rows}) == 4
    assert all(row.created_at == row.updated_at == now for row in rows)


@pytest.mark.parametrize("name", list(TABLE))
def test_each_preset_matches_the_table(name: str) -> None:
    (row,) = [row for row in default_presets("app", utcnow()) if row.name == name]
    view_type, can_record, can_livestream, can_produce = TABLE[name]
    assert row.config["view_type"] == view_type
    permissions = row.permissions
    assert (permissions["can_record"], permissions["can_livestream"]) == (can_record, can_livestream)
    assert {kind: media["can_produce"] for kind, media in permissions["media"].items()} == {
        "audio": can_produce, "video": can_produce, "screenshare": can_produce
    }  # fmt: skip
    assert permissions["recorder_type"] == "NONE"
    assert permissions["is_recorder"] is False and permissions["hidden_participant"] is False
    assert row.ui["design_tokens"]["theme"] == "dark"


def test_presets_of_two_apps_share_no_mutable_state() -> None:
    first, second = default_presets("a", utcnow())[0], default_presets("b", utcnow())[0]
    first.permissions["media"]["audio"]["can_produce"] = "NOT_ALLOWED"
    first.ui["design_tokens"]["theme"] = "light"
    assert second.permissions["media"]["audio"]["can_produce"] == "ALLOWED"
    assert second.ui["design_tokens"]["theme"] == "dark"
