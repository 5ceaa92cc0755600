"""A video frame's picture size, read from its bitstream header without decoding it.

A decoder allocates what the header declares: a forged 16383×16383 VP8 keyframe costs ~400 MB of
buffers before a single pixel is checked. Readers look here first and refuse what is too large.

VP8 (RFC 6386 §9.1): a key frame's 10-byte header carries 14-bit width and height. H.264 (ITU-T H.264
§7.3.2.1.1): the size is in the sequence parameter set (NAL type 7), in macroblocks minus the cropping
window; a frame without an SPS uses the last one the stream sent, which was checked when it came.
"""

from __future__ import annotations

from dataclasses import dataclass

VP8_START_CODE = b"\x9d\x01\x2a"
# Profiles whose SPS carries chroma format, bit depths and scaling matrices (§7.3.2.1.1).
H264_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
NAL_SPS = 7


class MalformedHeader(ValueError):
    """The header ends early or holds values no encoder writes."""


@dataclass(frozen=True)
class FrameSize:
    width: int
    height: int

    def fits(self, limit: FrameSize) -> bool:
        """Within `limit` in pixels and in its longer side, so a portrait picture passes a landscape limit."""
        within_pixels = self.width * self.height <= limit.width * limit.height
        return within_pixels and max(self.width, self.height) <= max(limit.width, limit.height)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


# What a reader decodes at most unless told otherwise (RECORDKIT_MEDIA_MAX_FRAME_SIZE).
DEFAULT_MAX_FRAME_SIZE = FrameSize(1920, 1080)


def declared_sizes(mime_type: str, data: bytes) -> list[FrameSize]:
    """Every picture size the frame declares (none for a VP8 inter frame or an H.264 frame without an SPS).

    Raises `MalformedHeader` when a header that should be there cannot be read.
    """
    mime = mime_type.lower()
    if mime == "video/vp8":
        return _vp8_sizes(data)
    if mime == "video/h264":
        return [_sps_size(_unescape(nal[1:])) for nal in h264_nal_units(data) if nal and nal[0] & 0x1F == NAL_SPS]
    return []


def _vp8_sizes(data: bytes) -> list[FrameSize]:
    if not data or data[0] & 0x01:
        return []  # an inter frame: it has the key frame's size
    if len(data) < 10 or data[3:6] != VP8_START_CODE:
        raise MalformedHeader("VP8 key frame without its start code")
    # The top two bits of each are the upscaling mode, not the size.
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return [FrameSize(width, height)]


def h264_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (as aiortc's depacketizer writes them)."""
    nals = []
    start = data.find(b"\x00\x00\x01")
    while start != -1:
        begin = start + 3
        start = data.find(b"\x00\x00\x01", begin)
        nals.append(data[begin : len(data) if start == -1 else start].rstrip(b"\x00"))
    return nals


def _unescape(rbsp: bytes) -> bytes:
    """Drop the emulation prevention bytes (00 00 03 → 00 00)."""
    return rbsp.replace(b"\x00\x00\x03", b"\x00\x00")


class _Bits:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._position = 0

    def bit(self) -> int:
        byte = self._position >> 3
        if byte >= len(self._data):
            raise MalformedHeader("SPS ends early")
        value = (self._data[byte] >> (7 - (self._position & 7))) & 1
        self._position += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        """An unsigned Exp-Golomb code; more than 31 leading zeros is no valid SPS field."""
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise MalformedHeader("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _sps_size(rbsp: bytes) -> FrameSize:
    bits = _Bits(rbsp)
    profile_idc = bits.bits(8)
    bits.bits(16)  # constraint flags and level
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    if profile_idc in H264_HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc > 3:
            raise MalformedHeader("chroma_format_idc out of range")
        separate_colour_planes = chroma_format_idc == 3 and bits.bit()
        if separate_colour_planes:
            chroma_format_idc = 0  # each colour plane is coded as monochrome (§7.4.2.1.1)
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for index in range(12 if chroma_format_idc == 3 else 8):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    pic_order_cnt_type = bits.ue()
    if pic_order_cnt_type == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif pic_order_cnt_type == 1:
        bits.bit()  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        for _ in range(bits.ue()):  # num_ref_frames_in_pic_order_cnt_cycle
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_map_units = bits.ue() + 1
    frame_mbs_only = bits.bit()
    if not frame_mbs_only:
        bits.bit()  # mb_adaptive_frame_field_flag
    bits.bit()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if bits.bit():  # frame_cropping_flag (Table 6-1 and §7.4.2.1.1 give the crop units)
        crop_x = 2 if chroma_format_idc in (1, 2) else 1
        crop_y = (2 if chroma_format_idc == 1 else 1) * (2 - frame_mbs_only)
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise MalformedHeader("cropped away the whole picture")
    return FrameSize(width, height)


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last
