"""What the composite draws over and in the tiles: a participant's name label and the initials of one without
video, set in DejaVu Sans by FreeType (through Pillow), anti-aliased.

Each is rendered once per (name, size) into an `Overlay`: a small premultiplied yuv420p picture with its
transparency, blended onto a frame with two multiplies and an add per pixel, in integers (the watermark's
arithmetic). The caches are per process and bounded; a recording of a few people renders a handful of them.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Debian's fonts-dejavu-core (scripts/setup.sh installs it): wide coverage of Latin, Greek and Cyrillic.
FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
BOLD_FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
ELLIPSIS = "…"
# The plate behind a name: black at this opacity keeps white text readable on a white picture, and lets a
# sync flash under it still dominate its tile.
PLATE_OPACITY = 0.6
# Names are white: limited-range BT.601 (what the encoder tags), neutral chroma.
WHITE_YUV = (235, 128, 128)
BLACK_YUV = (16, 128, 128)
# Disc colours for the initials of participants without video, one per name: saturated but dark enough for
# white letters.
AVATAR_RGB = [(26, 115, 232), (24, 128, 56), (197, 34, 31), (176, 96, 0), (132, 48, 160), (0, 121, 107)]
SUPERSAMPLE = 4  # shapes (plate corners, discs) are drawn this much bigger and shrunk: anti-aliased edges


@dataclass(frozen=True)
class Overlay:
    """A picture to blend onto yuv420p frames: per plane (Y, U, V), `premultiplied` is value × alpha and
    `transparency` 255 − alpha, so a pixel blends as (pixel × transparency + premultiplied) / 255.
    Width and height are even, so it lines up with the 2×2 chroma grid when placed at even coordinates."""

    width: int
    height: int
    premultiplied: tuple[np.ndarray, np.ndarray, np.ndarray]
    transparency: tuple[np.ndarray, np.ndarray, np.ndarray]

    def blend(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], x: int, y: int) -> None:
        """Blend onto the Y, U and V planes of a yuv420p picture at (x, y), both even, in place."""
        for index, plane in enumerate(planes):
            shift = 0 if index == 0 else 1
            region = plane[y >> shift : (y + self.height) >> shift, x >> shift : (x + self.width) >> shift]
            # pixel·(255−a) + value·a ≤ 255·255, so uint16 holds it, rounding included.
            region[:] = (region * self.transparency[index] + self.premultiplied[index] + 127) // 255


def layered(layers: list[tuple[np.ndarray, tuple[int, int, int]]]) -> Overlay:
    """An overlay of flat-coloured layers, bottom first: each an alpha mask (float, 0–1, all of one even size)
    and the layer's YUV colour."""
    height, width = layers[0][0].shape
    premultiplied, transparency = [], []
    for index in range(3):
        shape = (height, width) if index == 0 else (height // 2, width // 2)
        value, opacity = np.zeros(shape), np.zeros(shape)  # premultiplied colour and alpha of the layers so far
        for alpha, colour in layers:
            if index:  # chroma is one sample per 2×2 pixels: its alpha is the mean of theirs
                alpha = alpha.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
            value = value * (1 - alpha) + colour[index] * alpha
            opacity = opacity + alpha * (1 - opacity)
        alpha255 = np.rint(opacity * 255).astype(np.uint16)
        # Rounded apart, value·a could pass 255·a by a fraction: capped, the blend's sum stays within uint16.
        premultiplied.append(np.minimum(np.rint(value * 255), 255 * alpha255).astype(np.uint16))
        transparency.append(255 - alpha255)
    return Overlay(width, height, _three(premultiplied), _three(transparency))


def _three(planes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return planes[0], planes[1], planes[2]


def truncate(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> str:
    """`text` if it fits in `max_width` pixels, else its longest head that fits with "…" after it ("" if not
    even that fits)."""
    if font.getlength(text) <= max_width:
        return text
    low, high = 0, len(text)  # the longest fitting head is at least `low` and less than `high` characters
    while high - low > 1:
        middle = (low + high) // 2
        if font.getlength(text[:middle].rstrip() + ELLIPSIS) <= max_width:
            low = middle
        else:
            high = middle
    if low == 0 and font.getlength(ELLIPSIS) > max_width:
        return ""
    return text[:low].rstrip() + ELLIPSIS


def initials(name: str) -> str:
    """The first letter of a name's first and last words, in capitals ("Ada Lovelace" → "AL"); "?" for none."""
    words = [word for word in name.split() if any(char.isalnum() for char in word)]
    if not words:
        return "?"
    picked = words if len(words) == 1 else [words[0], words[-1]]
    return "".join(next(char for char in word if char.isalnum()).upper()[0] for word in picked)


def avatar_colour(name: str) -> tuple[int, int, int]:
    """The YUV colour of a name's initials disc: the same name always gets the same one."""
    return rgb_to_yuv(AVATAR_RGB[zlib.crc32(name.encode()) % len(AVATAR_RGB)])


def rgb_to_yuv(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """8-bit RGB to limited-range BT.601 YUV, the encoder's tagging."""
    r, g, b = rgb
    return (
        round(16 + 0.257 * r + 0.504 * g + 0.098 * b),
        round(128 - 0.148 * r - 0.291 * g + 0.439 * b),
        round(128 + 0.439 * r - 0.368 * g - 0.071 * b),
    )


def label_font_px(tile_height: int) -> int:
    """The name's type size for a tile: a sixteenth of its height, 12 to 36 px."""
    return max(12, min(36, round(tile_height / 16)))


def label_text(name: str, font_px: int, max_width: int) -> str:
    """What a name label `max_width` pixels wide shows: the name, cut with "…" if need be ("?" for no name)."""
    return truncate(name.strip() or "?", _font(FONT_PATH, font_px), max_width - 2 * _label_pad(font_px))


@lru_cache(maxsize=256)
def name_label(name: str, font_px: int, max_width: int) -> Overlay | None:
    """A name in white on a translucent dark plate with rounded corners, at most `max_width` pixels wide (cut
    with "…" if need be); None when not even "…" fits."""
    text = label_text(name, font_px, max_width)
    if not text:
        return None
    font = _font(FONT_PATH, font_px)
    pad = _label_pad(font_px)
    height = _even(font_px * 1.6)
    width = min(_even(font.getlength(text) + 2 * pad + 1), max_width - max_width % 2)
    plate = _rounded_rect(width, height, radius=height / 4)
    letters = Image.new("L", (width, height))
    ImageDraw.Draw(letters).text((pad, height / 2), text, font=font, fill=255, anchor="lm")
    coverage = np.asarray(letters, np.float64) / 255
    return layered([(plate * PLATE_OPACITY, BLACK_YUV), (coverage, WHITE_YUV)])


@lru_cache(maxsize=64)
def initials_disc(name: str, diameter: int) -> Overlay:
    """A name's initials in white on a disc of its colour, `diameter` (even) pixels across."""
    disc = _disc(diameter)
    letters = Image.new("L", (diameter, diameter))
    text = initials(name)
    font = _font(BOLD_FONT_PATH, max(6, round(diameter * (0.4 if len(text) > 1 else 0.5))))
    ImageDraw.Draw(letters).text((diameter / 2, diameter / 2), text, font=font, fill=255, anchor="mm")
    coverage = np.asarray(letters, np.float64) / 255
    return layered([(disc, avatar_colour(name)), (coverage, WHITE_YUV)])


def _label_pad(font_px: int) -> int:
    return _even(font_px * 0.5)


@lru_cache(maxsize=32)
def _font(path: Path, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), px)


def _rounded_rect(width: int, height: int, radius: float) -> np.ndarray:
    big = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE))
    box = (0, 0, width * SUPERSAMPLE - 1, height * SUPERSAMPLE - 1)
    ImageDraw.Draw(big).rounded_rectangle(box, radius=radius * SUPERSAMPLE, fill=255)
    return np.asarray(big.resize((width, height), Image.Resampling.BOX), np.float64) / 255


def _disc(diameter: int) -> np.ndarray:
    big = Image.new("L", (diameter * SUPERSAMPLE, diameter * SUPERSAMPLE))
    ImageDraw.Draw(big).ellipse((0, 0, diameter * SUPERSAMPLE - 1, diameter * SUPERSAMPLE - 1), fill=255)
    return np.asarray(big.resize((diameter, diameter), Image.Resampling.BOX), np.float64) / 255


def _even(value: float) -> int:
    return max(2, math.ceil(value / 2) * 2)
