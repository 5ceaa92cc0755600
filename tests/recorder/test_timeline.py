"""Paused spans are cut out of the media timeline (recordings.md §7.5)."""

from __future__ import annotations

import pytest

from recordkit.recorder.timeline import Timeline


def test_media_time_skips_pauses() -> None:
    timeline = Timeline(100.0)
    assert timeline.media_time(99.9) is None
    assert timeline.media_time(101.5) == pytest.approx(1.5)
    timeline.pause(102.0)
    timeline.pause(102.5)
    assert timeline.paused and timeline.media_time(103.0) is None
    timeline.resume(105.0)
    timeline.resume(106.0)
    assert not timeline.paused
    assert timeline.media_time(104.99) is None
    assert timeline.media_time(105.0) == pytest.approx(2.0)
    assert timeline.media_time(106.0) == pytest.approx(3.0)
    timeline.pause(107.0)
    timeline.resume(107.5)
    assert timeline.media_time(108.0) == pytest.approx(4.5)
    assert timeline.media_time(101.0) == pytest.approx(1.0), "earlier instants keep their place"
