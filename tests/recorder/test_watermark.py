"""The watermark: fetched within its limits, decoded only as PNG, JPEG or WebP, sized and placed as asked,
blended with its transparency."""

from __future__ import annotations

import base64
import io
import logging
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from recordkit.recorder.fetch import Network
from recordkit.recorder.layout import BLACK_LUMA, Rect, plane_view
from recordkit.recorder.plan import Corner, WatermarkSpec
from recordkit.recorder.watermark import (
    Watermark,
    WatermarkError,
    decode_image,
    fetch_image,
    image_demuxer,
    load_watermark,
    watermark_size,
)


def encode_image(rgba: np.ndarray, codec: str = "png") -> bytes:
    """An image file made with PyAV's encoders: PNG keeps RGBA, WebP keeps alpha in yuva420p, JPEG drops it."""
    pixel_format = {"png": "rgba", "webp": "yuva420p", "mjpeg": "yuvj420p"}[codec]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba), format="rgba").reformat(format=pixel_format)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as container:
        stream = container.add_stream(codec)
        stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, pixel_format
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def solid(width: int, height: int, rgb: tuple[int, int, int], alpha: int = 255) -> np.ndarray:
    image = np.empty((height, width, 4), np.uint8)
    image[..., :3] = rgb
    image[..., 3] = alpha
    return image


def black_frame(width: int = 1280, height: int = 720) -> av.VideoFrame:
    data = np.full((height * 3 // 2, width), 128, np.uint8)
    data[:height] = BLACK_LUMA
    return av.VideoFrame.from_ndarray(data, format="yuv420p")


def luma(frame: av.VideoFrame, rect: Rect) -> np.ndarray:
    return plane_view(frame, 0)[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]


def spec(width: int | None = None, height: int | None = None, position: Corner = Corner.LEFT_TOP) -> WatermarkSpec:
    return WatermarkSpec("https://example.com/logo.png", width, height, position)


@pytest.mark.parametrize(
    ("image", "asked", "frame", "expected"),
    [
        ((200, 100), (None, None), (1280, 720), (200, 100)),  # the image's own size
        ((200, 100), (50, None), (1280, 720), (50, 25)),  # width given: height follows the aspect ratio
        ((200, 100), (None, 40), (1280, 720), (80, 40)),
        ((200, 100), (30, 70), (1280, 720), (30, 70)),  # both given: as asked
        ((2560, 1000), (None, None), (1280, 720), (1280, 500)),  # too big: fitted, aspect kept
        ((1000, 2000), (None, None), (1280, 720), (360, 720)),
        ((100, 100), (3000, None), (1280, 720), (720, 720)),
    ],
)
def test_watermark_size(
    image: tuple[int, int], asked: tuple[int | None, int | None], frame: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert watermark_size(*image, spec(*asked), *frame) == expected


@pytest.mark.parametrize(
    ("corner", "x", "y"),
    [
        (Corner.LEFT_TOP, 0, 0),
        (Corner.RIGHT_TOP, 1180, 0),
        (Corner.LEFT_BOTTOM, 0, 670),
        (Corner.RIGHT_BOTTOM, 1180, 670),
    ],
)
def test_watermark_lands_flush_in_its_corner(corner: Corner, x: int, y: int) -> None:
    watermark = Watermark.from_image(encode_image(solid(100, 50, (255, 255, 255))), spec(position=corner), 1280, 720)
    frame = black_frame()
    watermark.apply(frame)
    assert np.all(luma(frame, Rect(x, y, 100, 50)) >= 233)  # white in limited range
    untouched = plane_view(frame, 0).copy()
    untouched[y : y + 50, x : x + 100] = BLACK_LUMA
    assert np.all(untouched == BLACK_LUMA)


def test_odd_sizes_at_the_far_corner_touch_the_edges_exactly() -> None:
    image = encode_image(solid(101, 51, (255, 255, 255)))
    watermark = Watermark.from_image(image, spec(position=Corner.RIGHT_BOTTOM), 1280, 720)
    assert watermark.rect == Rect(1178, 668, 102, 52)  # even-aligned, padded with transparency inside
    frame = black_frame()
    watermark.apply(frame)
    assert np.all(luma(frame, Rect(1179, 669, 101, 51)) >= 233)
    assert np.all(luma(frame, Rect(1178, 668, 1, 52)) == BLACK_LUMA)
    assert np.all(luma(frame, Rect(1178, 668, 102, 1)) == BLACK_LUMA)


def test_transparency_is_respected() -> None:
    image = solid(64, 32, (255, 255, 255), alpha=128)
    image[:, 32:, 3] = 0  # right half fully transparent
    watermark = Watermark.from_image(encode_image(image), spec(), 1280, 720)
    frame = black_frame()
    watermark.apply(frame)
    half = luma(frame, Rect(0, 0, 32, 32))
    assert np.all(np.abs(half.astype(int) - (16 + 235) // 2) <= 3)
    assert np.all(luma(frame, Rect(32, 0, 32, 32)) == BLACK_LUMA)


def test_colour_survives_and_jpeg_and_webp_decode() -> None:
    red = solid(40, 20, (255, 0, 0))
    for codec in ("png", "mjpeg", "webp"):
        watermark = Watermark.from_image(encode_image(red, codec), spec(), 1280, 720)
        frame = black_frame()
        watermark.apply(frame)
        rgb = frame.to_ndarray(format="rgb24")[4:16, 4:36].reshape(-1, 3).mean(axis=0)
        assert rgb[0] > 200 and rgb[1] < 50 and rgb[2] < 50, (codec, rgb)


def test_scaled_to_the_asked_size() -> None:
    watermark = Watermark.from_image(encode_image(solid(200, 100, (255, 255, 255))), spec(width=60), 640, 360)
    frame = black_frame(640, 360)
    watermark.apply(frame)
    white = plane_view(frame, 0) > 128
    assert white[:30, :60].all() and not white[30:].any() and not white[:, 60:].any()


def test_applying_to_another_frame_size_is_refused() -> None:
    watermark = Watermark.from_image(encode_image(solid(10, 10, (0, 0, 0))), spec(), 640, 360)
    with pytest.raises(ValueError, match="640x360"):
        watermark.apply(black_frame(1280, 720))


PNG = encode_image(solid(8, 8, (1, 2, 3)))
JPEG = encode_image(solid(8, 8, (1, 2, 3)), "mjpeg")
WEBP = encode_image(solid(8, 8, (1, 2, 3)), "webp")


def gif() -> bytes:
    frame = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24").reformat(format="rgb8")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="gif") as container:
        stream = container.add_stream("gif")
        stream.width, stream.height, stream.pix_fmt = 8, 8, "rgb8"
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "demuxer"),
    [
        (PNG, "png_pipe"),
        (JPEG, "jpeg_pipe"),
        (WEBP, "webp_pipe"),
        (gif(), None),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>', None),
        (b"<?xml version='1.0'?><svg/>", None),
        (bytes(range(256)) * 4, None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),  # RIFF, but not WebP
        (b"\x89PNG", None),  # a truncated signature
        (b"", None),
    ],
)
def test_the_demuxer_is_chosen_by_the_signature(data: bytes, demuxer: str | None) -> None:
    if demuxer is None:
        with pytest.raises(WatermarkError, match="not a PNG, JPEG or WebP image"):
            image_demuxer(data)
    else:
        assert image_demuxer(data) == demuxer


def mjpeg_in_avi() -> bytes:
    """A one-frame MJPEG video in AVI: FFmpeg's probing opens it and finds a JPEG codec inside."""
    frame = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24").reformat(format="yuvj420p")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 8, 8, "yuvj420p"
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def test_only_the_signature_s_format_is_decoded() -> None:
    assert [decode_image(data).width for data in (PNG, JPEG, WEBP)] == [8, 8, 8]
    for other in (gif(), mjpeg_in_avi()):
        with pytest.raises(WatermarkError, match="not a PNG, JPEG or WebP image"):
            decode_image(other)
    with pytest.raises(WatermarkError):
        decode_image(PNG[:8] + JPEG)  # a PNG signature is read as PNG, whatever follows


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height`, with four blank rows of picture data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = zlib.compress(b"\0" * (3 * width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("width", "height"), [(5000, 5001), (16000, 16000), (65535, 65535)])
def test_a_picture_over_25_megapixels_is_refused(width: int, height: int) -> None:
    with pytest.raises(WatermarkError, match="larger than 25000000 pixels"):
        decode_image(png_claiming(width, height))


def test_a_picture_over_the_limit_is_refused_before_it_is_decoded() -> None:
    """In a process of its own, whose peak memory would grow by the picture's 72 MB if it were decoded.

    The peak is read from /proc (VmHWM): getrusage's would start at the size of the pytest process forking it.
    """
    code = r"""
import re
from pathlib import Path
from recordkit.recorder.watermark import WatermarkError, decode_image
from tests.recorder.test_watermark import png_claiming

def peak_kb():
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())[1])

claim = png_claiming(5000, 5001)
before_kb = peak_kb()
try:
    decode_image(claim)
except WatermarkError:
    print((peak_kb() - before_kb) // 1024)
"""
    root = Path(__file__).parents[2]
    grown_mb = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert int(grown_mb) < 20


def test_only_images_are_accepted() -> None:
    with pytest.raises(WatermarkError):
        decode_image(b"definitely not an image")
    audio = io.BytesIO()
    with av.open(audio, "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
    with pytest.raises(WatermarkError, match="image"):
        decode_image(audio.getvalue())


async def test_data_urls() -> None:
    image = encode_image(solid(8, 8, (1, 2, 3)))
    assert await fetch_image("data:image/png;base64," + base64.b64encode(image).decode()) == image
    assert await fetch_image("data:,hello%20world") == b"hello world"
    assert await fetch_image("data:image/png;base64,@@@") is None
    assert await fetch_image("data:image/png;base64,AAAA", max_bytes=2) is None


class _Handler(BaseHTTPRequestHandler):
    image = b""

    def do_GET(self) -> None:
        if self.path == "/logo.png":
            self._send(200, self.image)
        elif self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", "/logo.png" if left == 0 else f"/hop/{left - 1}")
            self.end_headers()
        elif self.path == "/big":
            self._send(200, b"x" * 2000)
        elif self.path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(5):
                self.wfile.write(b"1f4\r\n" + b"x" * 500 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/slow":
            time.sleep(1.0)
            self._send(200, self.image)
        else:
            self._send(404, b"no")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        return  # clients that give up (timeouts, size limits) close the connection mid-answer: expected here


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    _Handler.image = encode_image(solid(20, 10, (255, 255, 255)))
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


LOOPBACK: tuple[Network, ...] = (ip_network("127.0.0.0/8"),)


async def test_fetch_over_http_within_the_limits(image_server: str) -> None:
    async def get(path: str, **limits: Any) -> bytes | None:
        return await fetch_image(f"{image_server}{path}", allowed=LOOPBACK, **limits)

    assert await get("/logo.png") == _Handler.image
    assert await get("/hop/2") == _Handler.image  # three redirects: allowed
    assert await get("/hop/3") is None  # four: too many
    assert await get("/missing") is None
    assert await get("/big", max_bytes=1000) is None
    assert await get("/big-chunked", max_bytes=1000) is None
    assert await get("/big-chunked", max_bytes=5000) == b"x" * 2500
    assert await get("/slow", timeout_s=0.2) is None
    assert await fetch_image("ftp://example.com/logo.png") is None


async def test_refused_fetches_are_logged_without_the_query(
    image_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="recordkit.recorder.watermark")
    assert await fetch_image(f"{image_server}/logo.png?signature=hunter2") is None
    assert await fetch_image(f"{image_server}/missing?signature=hunter2", allowed=LOOPBACK) is None
    refused, missing = (record.getMessage() for record in caplog.records)
    assert refused.startswith(f"watermark {image_server}/logo.png not fetched") and "(loopback)" in refused
    assert missing.startswith(f"watermark {image_server}/missing not fetched") and "404" in missing
    assert "hunter2" not in caplog.text


async def test_load_watermark_or_go_on_without_it(image_server: str) -> None:
    def at(url: str) -> WatermarkSpec:
        return WatermarkSpec(url, None, None, Corner.RIGHT_TOP)

    loaded = await load_watermark(at(f"{image_server}/logo.png"), 1280, 720, LOOPBACK)
    assert loaded is not None and loaded.rect == Rect(1260, 0, 20, 10)
    assert await load_watermark(at(f"{image_server}/logo.png"), 1280, 720) is None  # loopback, not allowed
    assert await load_watermark(at(f"{image_server}/missing"), 1280, 720, LOOPBACK) is None
    assert await load_watermark(at("data:,not-an-image"), 1280, 720) is None
