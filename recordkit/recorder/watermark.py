"""The watermark (recordings.md §9.4): an image fetched from a URL when capture starts, sized, placed flush
against a corner of the composite picture and alpha-blended onto every frame.

The image is fetched through `recorder/fetch.py` (addresses checked, every redirect too) and decoded by the
PNG, JPEG or WebP demuxer its first bytes name: never by FFmpeg's probing, which would open any of the dozens
of formats it knows from bytes a caller chose.

Everything that does not change per frame is done once: decoding (alpha kept), scaling, conversion to the
frame's yuv420p and premultiplying by alpha. Blending a frame is then two multiplies and an add per pixel of
the watermark's rectangle, in integers.

A watermark that cannot be fetched or decoded never stops a recording: `load_watermark` returns None and the
recording goes on without one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import av
import numpy as np

from recordkit.recorder.fetch import FetchError, Network, fetch, url_for_log
from recordkit.recorder.layout import Rect, plane_view
from recordkit.recorder.plan import Corner, WatermarkSpec

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 10.0
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 3
# A 5 MiB file can claim a huge picture (a 250 kB PNG decodes to 80 Mpx, 232 MB): larger ones are refused.
MAX_IMAGE_PIXELS = 25_000_000


class WatermarkError(ValueError):
    """The image cannot be used: not a PNG, JPEG or WebP image, or too big."""


@dataclass(frozen=True)
class Watermark:
    """A watermark ready to blend onto yuv420p frames of one size.

    `rect` is the even-aligned rectangle it covers (the image itself plus transparent padding up to even
    edges, on the side away from its corner). For each plane, `premultiplied` holds value × alpha and
    `transparency` 255 − alpha, so a pixel blends as (pixel × transparency + premultiplied) / 255.
    """

    rect: Rect
    frame_width: int
    frame_height: int
    premultiplied: tuple[np.ndarray, np.ndarray, np.ndarray]
    transparency: tuple[np.ndarray, np.ndarray, np.ndarray]

    @classmethod
    def from_image(cls, data: bytes, spec: WatermarkSpec, frame_width: int, frame_height: int) -> Watermark:
        """Decode an image and prepare it as `spec` asks for frames of the given (even) size."""
        image = decode_image(data)
        width, height = watermark_size(image.width, image.height, spec, frame_width, frame_height)
        rgba = image.reformat(width=width, height=height, format="rgba", interpolation="BICUBIC").to_ndarray()
        left = spec.position in (Corner.LEFT_TOP, Corner.LEFT_BOTTOM)
        top = spec.position in (Corner.LEFT_TOP, Corner.RIGHT_TOP)
        x = 0 if left else frame_width - width
        y = 0 if top else frame_height - height
        # Grow the rectangle to even edges with transparent pixels, so it lines up with the 2×2 chroma grid.
        right, bottom = x + width + (x + width) % 2, y + height + (y + height) % 2
        rect = Rect(x - x % 2, y - y % 2, right - (x - x % 2), bottom - (y - y % 2))
        padded = np.zeros((rect.height, rect.width, 4), np.uint8)
        padded[y - rect.y : y - rect.y + height, x - rect.x : x - rect.x + width] = rgba
        yuva = av.VideoFrame.from_ndarray(padded, format="rgba").reformat(format="yuva420p")
        luma, u, v, alpha = (plane_view(yuva, index).astype(np.uint16) for index in range(4))
        # Chroma is one sample per 2×2 pixels: its alpha is the mean of theirs.
        chroma_alpha = (alpha.reshape(rect.height // 2, 2, rect.width // 2, 2).sum(axis=(1, 3)) + 2) // 4
        return cls(
            rect=rect,
            frame_width=frame_width,
            frame_height=frame_height,
            premultiplied=(luma * alpha, u * chroma_alpha, v * chroma_alpha),
            transparency=(255 - alpha, 255 - chroma_alpha, 255 - chroma_alpha),
        )

    def apply(self, frame: av.VideoFrame) -> None:
        """Blend the watermark onto a yuv420p frame of the size it was prepared for, in place."""
        if frame.format.name != "yuv420p" or (frame.width, frame.height) != (self.frame_width, self.frame_height):
            raise ValueError(f"watermark prepared for yuv420p {self.frame_width}x{self.frame_height}")
        for index in range(3):
            shift = 0 if index == 0 else 1
            x, y = self.rect.x >> shift, self.rect.y >> shift
            w, h = self.rect.width >> shift, self.rect.height >> shift
            region = plane_view(frame, index)[y : y + h, x : x + w]
            # pixel·(255−a) + value·a ≤ 255·255, so uint16 holds it, rounding included.
            blended = region * self.transparency[index] + self.premultiplied[index] + 127
            region[:] = blended // 255


def image_demuxer(data: bytes) -> str:
    """The FFmpeg demuxer for a PNG, JPEG or WebP file (§9.4), chosen by the file's signature; each reads only
    its own format. WatermarkError for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png_pipe"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg_pipe"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp_pipe"
    raise WatermarkError("not a PNG, JPEG or WebP image")


def decode_image(data: bytes) -> av.VideoFrame:
    """The first picture of a PNG, JPEG or WebP file; raises WatermarkError for anything else."""
    demuxer = image_demuxer(data)
    try:
        # Opening decodes the first picture to learn its size: `max_pixels` makes the decoder refuse a larger
        # one before allocating it, and the size stays unknown (0).
        limit = {"max_pixels": str(MAX_IMAGE_PIXELS)}
        with av.open(io.BytesIO(data), format=demuxer, stream_options=[limit]) as container:
            stream = container.streams.video[0]
            if not 0 < stream.codec_context.width * stream.codec_context.height <= MAX_IMAGE_PIXELS:
                raise WatermarkError(f"image larger than {MAX_IMAGE_PIXELS} pixels, or of no readable size")
            for frame in container.decode(stream):
                return frame
    except av.FFmpegError as error:
        raise WatermarkError(f"cannot decode the image: {error}") from error
    raise WatermarkError("the image holds no picture")


def watermark_size(
    image_width: int, image_height: int, spec: WatermarkSpec, frame_width: int, frame_height: int
) -> tuple[int, int]:
    """The size to draw the image at (§9.4): as asked, the missing side following the image's aspect ratio,
    the image's own size when nothing is asked; then scaled down to fit the frame, aspect kept."""
    if spec.width is not None and spec.height is not None:
        width, height = spec.width, spec.height
    elif spec.width is not None:
        width, height = spec.width, max(1, round(spec.width * image_height / image_width))
    elif spec.height is not None:
        width, height = max(1, round(spec.height * image_width / image_height)), spec.height
    else:
        width, height = image_width, image_height
    if width > frame_width or height > frame_height:
        scale = min(frame_width / width, frame_height / height)
        width, height = max(1, min(frame_width, round(width * scale))), max(1, min(frame_height, round(height * scale)))
    return width, height


async def fetch_image(
    url: str,
    *,
    allowed: Sequence[Network] = (),
    timeout_s: float = FETCH_TIMEOUT_S,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_redirects: int = MAX_REDIRECTS,
) -> bytes | None:
    """The bytes behind an http, https or data: URL, or None (logged) when they cannot be had within the limits
    (the whole fetch, redirects included, within `timeout_s`; at most `max_bytes`; at most `max_redirects`)
    or lead to an internal address outside the `allowed` networks (`fetch.refusal`)."""
    try:
        if url.startswith("data:"):
            data = _data_url_bytes(url)
            return data if len(data) <= max_bytes else None
        return await fetch(url, allowed=allowed, timeout_s=timeout_s, max_bytes=max_bytes, max_redirects=max_redirects)
    except (FetchError, ValueError) as error:
        log.warning("watermark %s not fetched: %s", url_for_log(url), error)
        return None


async def load_watermark(
    spec: WatermarkSpec, frame_width: int, frame_height: int, allowed: Sequence[Network] = ()
) -> Watermark | None:
    """Fetch, decode and prepare the watermark, or None (logged) when any of it fails (§9.4); `allowed` are the
    networks the fetch may reach although they are internal (RECORDKIT_FETCH_ALLOW)."""
    data = await fetch_image(spec.url, allowed=allowed)
    if data is None:
        return None
    try:
        # Decoding and scaling a large image takes tens of milliseconds: not on the event loop.
        return await asyncio.to_thread(Watermark.from_image, data, spec, frame_width, frame_height)
    except (WatermarkError, av.FFmpegError) as error:
        log.warning("watermark %s not used: %s", url_for_log(spec.url), error)
        return None


def _data_url_bytes(url: str) -> bytes:
    """The payload of a `data:[<type>][;base64],<data>` URL (RFC 2397); raises ValueError when malformed."""
    header, separator, payload = url[len("data:") :].partition(",")
    if not separator:
        raise ValueError("data: URL without a comma")
    if header.split(";")[-1].strip().lower() == "base64":
        try:
            return base64.b64decode(unquote_to_bytes(payload), validate=True)
        except binascii.Error as error:
            raise ValueError(f"bad base64 in data: URL: {error}") from error
    return unquote_to_bytes(payload)
