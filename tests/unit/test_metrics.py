"""The recorder's figures as Prometheus counts them: running totals become increments, once each."""

from __future__ import annotations

import time
from fractions import Fraction
from typing import cast

from recordkit.meetings.media.reading import TrackDecoder
from recordkit.meetings.media.receiving import EncodedFrame
from recordkit.metrics import Metrics, RecorderMeter
from recordkit.recorder.inputs import MAX_AUDIO_FRAMES, Inputs
from recordkit.recorder.stages import STAGES, StageClock
from tests.support.metrics import metric

# The queues here only overflow: nothing is taken from them, so nothing is decoded.
NEVER_DECODED = cast(TrackDecoder, None)


def audio_frame(index: int) -> EncodedFrame:
    return EncodedFrame(b"\xfc" + bytes(80), index * 960, Fraction(1, 48_000), True, 1000.0 + index * 0.02)


def flood(inputs: Inputs, peer_id: str, frames: int) -> None:
    queue = inputs.queue("audio", peer_id)
    for index in range(frames):
        queue.append(audio_frame(index), NEVER_DECODED)


def test_dropped_frames_are_counted_once_and_stay_counted_after_their_participant_left() -> None:
    metrics, inputs = Metrics(), Inputs()
    meter = RecorderMeter(metrics)
    flood(inputs, "ada", MAX_AUDIO_FRAMES + 3)
    meter.frame(0.25, 0.1, 0, {"input": inputs.dropped, "encoder": 1})
    meter.frame(0.25, 0.1, 0, {"input": inputs.dropped, "encoder": 1})
    inputs.forget("ada")
    flood(inputs, "bob", MAX_AUDIO_FRAMES + 2)
    meter.frame(0.5, 1.2, 2, {"input": inputs.dropped, "encoder": 1})
    text = metrics.exposition().decode()
    assert metric(text, "recordkit_frames_dropped_total", stage="input") == 5
    assert metric(text, "recordkit_frames_dropped_total", stage="encoder") == 1
    assert metric(text, "recordkit_frames_dropped_total", stage="skipped") == 2
    assert metric(text, "recordkit_encode_seconds_total") == 1.0
    assert metric(text, "recordkit_capture_lag_seconds_count") == 3
    assert metric(text, "recordkit_capture_lag_seconds_bucket", le="1.0") == 2


def test_recorder_cpu_by_stage_is_exported_as_running_totals() -> None:
    metrics = Metrics()
    meter = RecorderMeter(metrics)
    meter.frame(0.01, 0.0, 0, {}, {"video_encode": 0.5, "compose": 0.1})
    meter.frame(0.01, 0.0, 0, {}, {"video_encode": 0.75, "compose": 0.1})
    text = metrics.exposition().decode()
    assert metric(text, "recordkit_recorder_cpu_seconds_total", stage="video_encode") == 0.75
    assert metric(text, "recordkit_recorder_cpu_seconds_total", stage="compose") == 0.1


def test_a_stage_clock_gives_each_stage_the_cpu_its_work_used() -> None:
    clock = StageClock()
    clock.start()
    spin(0.05)
    clock.lap("video_encode")
    time.sleep(0.05)  # waiting is not CPU
    clock.lap("mix")
    totals = clock.totals()
    assert 0.04 <= totals["video_encode"] <= 0.2
    assert totals["mix"] < 0.01
    assert set(totals) == set(STAGES)


def spin(cpu_s: float) -> None:
    until_s = time.thread_time() + cpu_s
    while time.thread_time() < until_s:
        pass
