"""What the server makes of an offer (meetings.md §8 "Media"): which sections it receives, which it
sends on, which codec, and which offers it refuses."""

from __future__ import annotations

import pytest

from recordkit.meetings.media.offer import OfferRejected, read_offer
from tests.meetings.media.sdp import offer_sdp

EVERYTHING = {"audio": True, "video": True}
NOTHING = {"audio": False, "video": False}


def test_send_sections_are_received_and_receive_sections_become_slots() -> None:
    offer = read_offer(
        offer_sdp(
            ("audio", "sendonly", ("opus",)),
            ("video", "sendonly", ("VP8",)),
            ("audio", "recvonly", ("opus",)),
            ("video", "recvonly", ("VP8", "H264")),
        ),
        EVERYTHING,
    )

    assert [(s.mid, s.kind, s.direction) for s in offer.sections] == [
        ("0", "audio", "recvonly"),
        ("1", "video", "recvonly"),
        ("2", "audio", "sendonly"),
        ("3", "video", "sendonly"),
    ]
    assert [s.codec.mimeType for s in offer.sections] == ["audio/opus", "video/VP8", "audio/opus", "video/VP8"]
    assert offer.sections[0].media_ssrc == 1000


def test_a_sendrecv_section_both_publishes_and_receives() -> None:
    (section,) = read_offer(offer_sdp(("video", "sendrecv", ("VP8",))), EVERYTHING).sections

    assert section.receive and section.send and section.direction == "sendrecv"


def test_viewer_send_sections_are_answered_inactive_and_sendrecv_only_receives() -> None:
    offer = read_offer(
        offer_sdp(("audio", "sendonly", ("opus",)), ("video", "sendrecv", ("VP8",))),
        NOTHING,
    )

    assert [s.direction for s in offer.sections] == ["inactive", "sendonly"]


def test_only_the_first_send_section_of_a_kind_is_published() -> None:
    offer = read_offer(offer_sdp(("video", "sendonly", ("VP8",)), ("video", "sendonly", ("VP8",))), EVERYTHING)

    assert [s.receive for s in offer.sections] == [True, False]


def test_h264_is_taken_when_no_vp8_is_offered() -> None:
    (section,) = read_offer(offer_sdp(("video", "sendonly", ("H264",))), EVERYTHING).sections

    assert section.codec.mimeType == "video/H264"


def test_sixteen_candidates_a_section_are_taken() -> None:
    assert read_offer(offer_sdp(("audio", "sendonly", ("opus",)), candidates=16), EVERYTHING).sections


def test_a_section_without_direction_means_sendrecv() -> None:
    offer = read_offer(offer_sdp(("audio", None, ("opus",))), EVERYTHING)

    assert offer.sections[0].offered == "sendrecv"
    assert "a=sendrecv" in offer.sdp


@pytest.mark.parametrize(
    ("sdp", "detail"),
    [
        ("hello", "is not a valid SDP offer"),
        ("v=0\r\nm=audio x\r\n", "is not a valid SDP offer"),
        (offer_sdp(("application", None, ())), "offers no audio or video section"),
        (
            offer_sdp(("video", "sendonly", ("VP9",))),
            "offers no acceptable video codec in section 0 (VP9; needs VP8 or H264)",
        ),
        (
            offer_sdp(("audio", "sendonly", ("PCMU",))),
            "offers no acceptable audio codec in section 0 (PCMU; needs OPUS)",
        ),
        (offer_sdp(("audio", "sendonly", ("opus",)), ice=False), "section 0 has no ICE username fragment or password"),
        (offer_sdp(("audio", "sendonly", ("opus",)), mux=False), "section 0 does not use RTCP mux"),
        (offer_sdp(("audio", "sendonly", ("opus",)), candidates=17), "section 0 has more than 16 ICE candidates"),
    ],
)
def test_offers_that_cannot_be_answered_are_refused(sdp: str, detail: str) -> None:
    with pytest.raises(OfferRejected) as refused:
        read_offer(sdp, EVERYTHING)

    assert refused.value.detail == detail
