"""Picture sizes read from VP8 and H.264 headers: real encoder output, and headers forged to ask for more."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from recordkit.meetings.media.bitstream import (
    DEFAULT_MAX_FRAME_SIZE,
    FrameSize,
    MalformedHeader,
    declared_sizes,
    h264_nal_units,
)
from tests.support.media import encode_vp8


def encode_h264(width: int, height: int, profile: str = "baseline") -> bytes:
    """One Annex B access unit (SPS, PPS, IDR) from libx264."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": profile}
    frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24").reformat(
        format="yuv420p"
    )
    frame.pts = 0
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> None:
        self.bits += [(value >> shift) & 1 for shift in range(count - 1, -1, -1)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() * 2 - 1, code)

    def rbsp(self) -> bytes:
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        data = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        # Emulation prevention, as an encoder writes it.
        return data.replace(b"\x00\x00", b"\x00\x00\x03")


def forged_sps(width_mbs: int, height_mbs: int, crop_right: int = 0, crop_bottom: int = 0) -> bytes:
    """A baseline-profile SPS declaring the given size (the way a hostile sender would write one)."""
    bits = BitWriter()
    bits.u(8, 66)  # profile_idc: baseline
    bits.u(16, 0x001F)  # constraint flags, level 3.1
    bits.ue(0)  # seq_parameter_set_id
    bits.ue(0)  # log2_max_frame_num_minus4
    bits.ue(2)  # pic_order_cnt_type
    bits.ue(1)  # max_num_ref_frames
    bits.u(1, 0)  # gaps
    bits.ue(width_mbs - 1)
    bits.ue(height_mbs - 1)
    bits.u(1, 1)  # frame_mbs_only_flag
    bits.u(1, 1)  # direct_8x8_inference_flag
    cropped = crop_right or crop_bottom
    bits.u(1, 1 if cropped else 0)
    if cropped:
        for value in (0, crop_right, 0, crop_bottom):
            bits.ue(value)
    bits.u(1, 0)  # vui_parameters_present_flag
    return b"\x00\x00\x00\x01\x67" + bits.rbsp()


@pytest.mark.parametrize(("width", "height"), [(320, 180), (640, 360), (1280, 720)])
def test_vp8_key_frames_declare_the_encoded_size(width: int, height: int) -> None:
    frames = encode_vp8(frames=3, width=width, height=height)
    assert declared_sizes("video/VP8", frames[0]) == [FrameSize(width, height)]
    assert declared_sizes("video/VP8", frames[1]) == []  # an inter frame has its key frame's size


def test_a_vp8_key_frame_patched_to_16383_square_reads_as_such_and_does_not_fit() -> None:
    keyframe = bytearray(encode_vp8(frames=1)[0])
    keyframe[6:10] = (16383).to_bytes(2, "little") * 2
    (size,) = declared_sizes("video/vp8", bytes(keyframe))
    assert size == FrameSize(16383, 16383)
    assert not size.fits(DEFAULT_MAX_FRAME_SIZE)


def test_a_vp8_key_frame_without_its_start_code_is_malformed() -> None:
    keyframe = bytearray(encode_vp8(frames=1)[0])
    keyframe[3] = 0
    with pytest.raises(MalformedHeader):
        declared_sizes("video/VP8", bytes(keyframe))
    with pytest.raises(MalformedHeader):
        declared_sizes("video/VP8", bytes(keyframe[:5]))


@pytest.mark.parametrize(
    ("width", "height", "profile"),
    [(1920, 1080, "high"), (1280, 720, "baseline"), (720, 1280, "main"), (642, 362, "high"), (176, 144, "baseline")],
)
def test_h264_sps_of_libx264_declares_the_encoded_size_after_cropping(width: int, height: int, profile: str) -> None:
    access_unit = encode_h264(width, height, profile)
    assert declared_sizes("video/H264", access_unit) == [FrameSize(width, height)]


def test_h264_frames_without_an_sps_declare_nothing() -> None:
    access_unit = encode_h264(320, 240)
    slices = [nal for nal in h264_nal_units(access_unit) if nal[0] & 0x1F not in (7, 8)]
    assert slices
    assert declared_sizes("video/H264", b"".join(b"\x00\x00\x00\x01" + nal for nal in slices)) == []


def test_a_forged_h264_sps_for_16383_square_is_read_as_such() -> None:
    # 1024 macroblocks a side; 68 macroblocks cropped by 4 crop units (2 rows each in 4:2:0) make 1080.
    (size,) = declared_sizes("video/H264", forged_sps(1024, 1024))
    assert size == FrameSize(16384, 16384)
    (cropped,) = declared_sizes("video/H264", forged_sps(120, 68, crop_bottom=4))
    assert cropped == FrameSize(1920, 1080)
    assert cropped.fits(DEFAULT_MAX_FRAME_SIZE) and not size.fits(DEFAULT_MAX_FRAME_SIZE)


def test_truncated_or_absurd_h264_sps_is_malformed() -> None:
    sps = forged_sps(80, 45)
    with pytest.raises(MalformedHeader):
        declared_sizes("video/H264", sps[:8])
    with pytest.raises(MalformedHeader):
        declared_sizes("video/H264", b"\x00\x00\x00\x01\x67\x42\x00\x1f" + b"\x00" * 8)


def test_a_portrait_picture_fits_a_landscape_limit_but_a_taller_one_does_not() -> None:
    assert FrameSize(1080, 1920).fits(DEFAULT_MAX_FRAME_SIZE)
    assert not FrameSize(1080, 1921).fits(DEFAULT_MAX_FRAME_SIZE)
    assert not FrameSize(1921, 1080).fits(DEFAULT_MAX_FRAME_SIZE)
    assert not FrameSize(1900, 1900).fits(DEFAULT_MAX_FRAME_SIZE)


def test_audio_declares_nothing() -> None:
    assert declared_sizes("audio/opus", b"\xff" * 40) == []
