"""Hand-written SDP offers for tests that need no network: one section per (kind, direction, codecs)."""

from __future__ import annotations

FINGERPRINT = ":".join(["AB"] * 32)
CODEC_LINES = {
    "opus": ["a=rtpmap:111 opus/48000/2"],
    "PCMU": ["a=rtpmap:0 PCMU/8000"],
    "VP8": ["a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack pli", "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96"],
    "VP9": ["a=rtpmap:98 VP9/90000"],
    "H264": [
        "a=rtpmap:102 H264/90000",
        "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    ],
}
PAYLOAD_TYPES = {"opus": "111", "PCMU": "0", "VP8": "96 97", "VP9": "98", "H264": "102"}


def offer_sdp(
    *sections: tuple[str, str | None, tuple[str, ...]], ice: bool = True, mux: bool = True, candidates: int = 0
) -> str:
    """An offer with the given (kind, direction or None, codec names) sections, bundled; `candidates` host
    candidates in each section."""
    mids = " ".join(str(index) for index in range(len(sections)))
    lines = ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", f"a=group:BUNDLE {mids}", "a=msid-semantic:WMS *"]
    for index, (kind, direction, codecs) in enumerate(sections):
        if kind == "application":
            lines += ["m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0", f"a=mid:{index}"]
            lines += ["a=sctp-port:5000", "a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuv"]
            lines += [f"a=fingerprint:sha-256 {FINGERPRINT}", "a=setup:actpass"]
            continue
        types = " ".join(PAYLOAD_TYPES[codec] for codec in codecs)
        lines += [f"m={kind} 9 UDP/TLS/RTP/SAVPF {types}", "c=IN IP4 0.0.0.0"]
        if direction:
            lines.append(f"a={direction}")
        lines += [f"a=mid:{index}", f"a=ssrc:{1000 + index} cname:test"]
        if mux:
            lines.append("a=rtcp-mux")
        for codec in codecs:
            lines += CODEC_LINES[codec]
        if ice:
            lines += ["a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuv"]
        lines += [f"a=candidate:{n} 1 udp {2130706431 - n} 192.0.2.1 {40000 + n} typ host" for n in range(candidates)]
        lines += [f"a=fingerprint:sha-256 {FINGERPRINT}", "a=setup:actpass"]
    return "\r\n".join(lines) + "\r\n"
