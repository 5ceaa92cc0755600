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


@pytest.mark.parametrize(
    ("sr_sender_s", "arrival_s", "expected_s"),
    [
        (1000.0 - 3600.0, 1003.0, 1001.0),  # a report dated an hour back: kept 2 s before arrival
        (1000.0 + 3600.0, 1003.0, 1003.5),  # an hour ahead (a forged report): 0.5 s after arrival
        (1000.0 + 0.3, 1003.0, 1003.3),  # within the band: as reported
    ],
)
def test_send_times_stay_within_two_seconds_before_and_half_a_second_after_arrival(
    sr_sender_s: float, arrival_s: float, expected_s: float
) -> None:
    sender = SenderClock()
    sender.observe(1000.0, 1000.0)  # the honest offset: none
    clock = TrackClock(90_000, sender)
    clock.set_rtp_origin(0)
    clock.on_sender_report(ntp(sr_sender_s), 0, arrival_unix_s=1000.0 + 3600.0)
    assert clock.wall_time_s(270_000, arrival_unix_s=arrival_s) == pytest.approx(expected_s)


def test_a_frame_after_a_long_stall_is_dated_at_most_two_seconds_back() -> None:
    clock = TrackClock(90_000, SenderClock())
    assert clock.wall_time_s(0, arrival_unix_s=100.0) == pytest.approx(100.0)
    # 10 s of media arrive at once after a stall: each is dated no earlier than 2 s before it arrived.
    assert clock.wall_time_s(900_000, arrival_unix_s=115.0) == pytest.approx(113.0)
