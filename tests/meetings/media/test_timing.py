"""Frame send times from RTP timestamps: arrivals until the sender's first report, its reports after."""

from __future__ import annotations

import pytest

from recordkit.meetings.media.timing import NTP_UNIX_OFFSET_S, SenderClock, TrackClock, ntp_to_unix_s


def ntp(unix_s: float) -> int:
    seconds = unix_s + NTP_UNIX_OFFSET_S
    return (int(seconds) << 32) | int((seconds % 1) * (1 << 32))


def test_ntp_timestamps_read_as_unix_seconds() -> None:
    assert ntp_to_unix_s(ntp(1_700_000_000.25)) == pytest.approx(1_700_000_000.25, abs=1e-6)


def test_before_any_report_times_follow_the_earliest_arrival() -> None:
    clock = TrackClock(90_000, SenderClock())

    assert clock.wall_time_s(0, arrival_unix_s=100.050) == pytest.approx(100.050)
    # A frame that arrives quicker than the first moves the anchor earlier.
    assert clock.wall_time_s(9000, arrival_unix_s=100.120) == pytest.approx(100.120)
    assert clock.wall_time_s(18000, arrival_unix_s=100.300) == pytest.approx(100.220)
    assert not clock.synchronised


def test_sender_reports_map_pts_to_the_senders_clock_shifted_onto_ours() -> None:
    sender = SenderClock()
    video, audio = TrackClock(90_000, sender), TrackClock(48_000, sender)
    video.set_rtp_origin(4_000_000_000)  # wraps within the test
    audio.set_rtp_origin(12_345)
    # The sender's clock runs 2 s behind ours; reports take 5 ms to arrive.
    video.on_sender_report(ntp(1000.0), (4_000_000_000 + 90_000) % (1 << 32), arrival_unix_s=1002.005)
    audio.on_sender_report(ntp(1000.5), 12_345 + 72_000, arrival_unix_s=1002.505)

    # Both frames were sent at sender time 1001.0: the same instant on our clock.
    assert video.wall_time_s(180_000, arrival_unix_s=1003.1) == pytest.approx(1003.005)
    assert audio.wall_time_s(96_000, arrival_unix_s=1003.2) == pytest.approx(1003.005)
    assert video.synchronised and audio.synchronised


def test_the_quickest_report_sets_the_clock_offset() -> None:
    sender = SenderClock()
    sender.observe(10.0, 12.050)
    sender.observe(11.0, 13.010)
    sender.observe(12.0, 14.200)

    assert sender.offset_s == pytest.approx(2.010)
