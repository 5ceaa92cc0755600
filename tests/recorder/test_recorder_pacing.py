"""How the composite recorder paces its output when it falls behind (composite.next_tick)."""

from __future__ import annotations

from recordkit.recorder.composite import CATCH_UP_S, MAX_CATCH_UP_S, next_tick

FRAME_S = 1 / 30


def test_on_time_or_a_short_stall_renders_every_frame() -> None:
    assert next_tick(10, 0.0, FRAME_S) == 11
    assert next_tick(10, CATCH_UP_S, FRAME_S) == 11


def test_a_recorder_that_cannot_keep_up_renders_every_other_then_every_fourth_frame() -> None:
    halfway_s = (CATCH_UP_S + MAX_CATCH_UP_S) / 2
    assert next_tick(10, CATCH_UP_S + 0.01, FRAME_S) == 12
    assert next_tick(10, halfway_s - 0.01, FRAME_S) == 12
    assert next_tick(10, halfway_s + 0.01, FRAME_S) == 14
    assert next_tick(10, MAX_CATCH_UP_S - 0.01, FRAME_S) == 14


def test_a_long_stall_jumps_to_the_frame_due_now() -> None:
    assert next_tick(10, MAX_CATCH_UP_S + 0.5, FRAME_S) == 10 + round((MAX_CATCH_UP_S + 0.5) * 30)


def test_catching_up_at_half_rate_ends_once_the_lag_is_back_under_the_limit() -> None:
    # Rendering takes 40 ms here, more than a 30 fps frame: at full rate the lag grows, at half rate it shrinks.
    tick, lag_s, rates = 0, 0.0, []
    for _ in range(300):
        following = next_tick(tick, lag_s, FRAME_S)
        rates.append(following - tick)
        lag_s = max(0.0, lag_s + 0.040 - (following - tick) * FRAME_S)
        tick = following
    assert max(rates) == 2, "never jumps: half rate keeps up"
    assert rates.count(1) > rates.count(2), "most frames still rendered"
    assert lag_s <= CATCH_UP_S + 0.04
