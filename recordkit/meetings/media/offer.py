"""Reading a client's SDP offer and deciding the answer's shape (meetings.md §8, "Media").

Pure functions over the parsed offer; nothing here touches a connection. A section the client sends
on (`sendonly`/`sendrecv`) is received if it is the first such section of its kind and the preset may
produce that kind; a section the client receives on (`recvonly`/`sendrecv`) becomes a slot the server
sends another participant's track on. Audio is Opus; video is VP8, or H264 when the client offers no
VP8 (forwarded only to slots that negotiated H264 too). An offer is refused (`OfferRejected`, a 400)
when it cannot be parsed, lacks ICE or DTLS parameters or RTCP mux, carries more than 16 ICE candidates
in a section, or has an audio/video section with none of those codecs.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCRtpSender, sdp
from aiortc.codecs import CODECS, is_rtx
from aiortc.rtcpeerconnection import find_common_codecs
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters

KINDS = ("audio", "video")
# In order of preference: the answer's first codec is the one the client sends.
ACCEPTED_CODECS = {"audio": ("audio/opus",), "video": ("video/vp8", "video/h264")}
# A bound on the work one offer can ask for (each section is a transceiver with its own tasks).
MAX_SECTIONS = 64
# Each remote candidate is a pair aioice checks with STUN: a browser offers a handful per section.
MAX_CANDIDATES_PER_SECTION = 16
SENDING = ("sendonly", "sendrecv")
RECEIVING = ("recvonly", "sendrecv")


class OfferRejected(Exception):
    """The offer cannot be answered; `detail` completes the message `"sdp" <detail>`."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Section:
    """One audio or video section of the offer and what the server does with it."""

    index: int
    kind: str
    mid: str
    offered: str  # the client's direction
    receive: bool  # the server receives the client's media here
    send: bool  # the server sends another participant's track here
    codec: RTCRtpCodecParameters  # the codec both sides will use
    media_ssrc: int | None  # the client's SSRC on this section, when it says

    @property
    def direction(self) -> str:
        """The server transceiver's direction, and so the answer's."""
        return {(True, True): "sendrecv", (True, False): "recvonly", (False, True): "sendonly"}.get(
            (self.receive, self.send), "inactive"
        )


@dataclass(frozen=True)
class Offer:
    """A parsed offer: its SDP text as the server will apply it, and its audio/video sections."""

    sdp: str
    sections: tuple[Section, ...]


def read_offer(text: str, may_produce: dict[str, bool]) -> Offer:
    """Parse and check `text`; `may_produce[kind]` says whether the preset lets the client publish it."""
    if not text.lstrip().startswith("v="):
        raise OfferRejected("is not a valid SDP offer")
    try:
        description = sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc's parser raises whatever the malformed line trips on
        raise OfferRejected("is not a valid SDP offer") from exc
    if len(description.media) > MAX_SECTIONS:
        raise OfferRejected(f"has more than {MAX_SECTIONS} media sections")
    sections = []
    publishing: set[str] = set()
    rewritten = False
    for index, media in enumerate(description.media):
        if media.kind not in KINDS:
            continue
        _check_transport(media, index)
        if media.direction is None:
            # RFC 4566: no direction attribute means sendrecv; aiortc needs it spelt out.
            media.direction = "sendrecv"
            rewritten = True
        codec = _codec(media)
        if codec is None:
            names = ", ".join(sorted({c.name for c in media.rtp.codecs if not is_rtx(c)})) or "none"
            accepted = " or ".join(mime.split("/")[1].upper() for mime in ACCEPTED_CODECS[media.kind])
            raise OfferRejected(
                f"offers no acceptable {media.kind} codec in section {index} ({names}; needs {accepted})"
            )
        receive = media.direction in SENDING and may_produce.get(media.kind, False) and media.kind not in publishing
        if receive:
            publishing.add(media.kind)
        sections.append(
            Section(
                index=index,
                kind=media.kind,
                mid=media.rtp.muxId or str(index),
                offered=media.direction,
                receive=receive,
                send=media.direction in RECEIVING,
                codec=codec,
                media_ssrc=media.ssrc[0].ssrc if media.ssrc else None,
            )
        )
    if not sections:
        raise OfferRejected("offers no audio or video section")
    return Offer(sdp=str(description) if rewritten else text, sections=tuple(sections))


def codec_preferences(kind: str) -> list[RTCRtpCodecCapability]:
    """The accepted codecs of `kind` (and RTX) as transceiver codec preferences."""
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    preferred = [c for mime in ACCEPTED_CODECS[kind] for c in capabilities if c.mimeType.lower() == mime]
    return preferred + [c for c in capabilities if is_rtx(c)]


def _codec(media: sdp.MediaDescription) -> RTCRtpCodecParameters | None:
    common = [c for c in find_common_codecs(CODECS[media.kind], media.rtp.codecs) if not is_rtx(c)]
    for mime in ACCEPTED_CODECS[media.kind]:
        for codec in common:
            if codec.mimeType.lower() == mime:
                return codec
    return None


def _check_transport(media: sdp.MediaDescription, index: int) -> None:
    if len(media.ice_candidates) > MAX_CANDIDATES_PER_SECTION:
        raise OfferRejected(f"section {index} has more than {MAX_CANDIDATES_PER_SECTION} ICE candidates")
    if not media.ice.usernameFragment or not media.ice.password:
        raise OfferRejected(f"section {index} has no ICE username fragment or password")
    if media.dtls is None or not media.dtls.fingerprints:
        raise OfferRejected(f"section {index} has no DTLS fingerprint")
    if not media.rtcp_mux:
        raise OfferRejected(f"section {index} does not use RTCP mux")
