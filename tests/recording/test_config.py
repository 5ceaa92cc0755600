"""Rules on a recording's effective configuration (recordings.md §6.1, §8, §9.4)."""

from __future__ import annotations

from typing import Any

import pytest

from recordkit.recording.config import ConfigRuleBroken, Levels, check_rules, resolve

LOGO = "https://example.org/logo.png"


def watermark(**size: int) -> dict[str, Any]:
    return {"url": LOGO, "size": size}


@pytest.mark.parametrize(
    ("request_body", "meeting", "broken"),
    [
        ({"video_config": {"watermark": watermark(width=1280, height=720)}}, {}, None),
        ({"video_config": {"watermark": {"url": LOGO}}}, {}, None),
        (
            {"video_config": {"watermark": watermark(width=1281)}},
            {},
            '"video_config.watermark.size.width" must be less than or equal to "video_config.width" (1280)',
        ),
        (
            {"video_config": {"watermark": watermark(width=10, height=721)}},
            {},
            '"video_config.watermark.size.height" must be less than or equal to "video_config.height" (720)',
        ),
        (
            {"video_config": {"width": 720, "height": 1280, "watermark": watermark(width=720, height=1280)}},
            {},
            None,
        ),
        (
            {"video_config": {"width": 640}},
            {"video_config": {"watermark": watermark(width=800)}},
            '"video_config.watermark.size.width" must be less than or equal to "video_config.width" (640)',
        ),
        (
            {"video_config": {"export_file": False, "watermark": watermark(width=5000, height=5000)}},
            {"audio_config": {}},
            None,
        ),
    ],
)
def test_watermark_size_is_bounded_by_the_output_size(
    request_body: dict[str, Any], meeting: dict[str, Any], broken: str | None
) -> None:
    effective = resolve(Levels(request=request_body, meeting=meeting, server={}))
    if broken is None:
        check_rules(effective)
        return
    with pytest.raises(ConfigRuleBroken) as refused:
        check_rules(effective)
    assert str(refused.value) == broken
