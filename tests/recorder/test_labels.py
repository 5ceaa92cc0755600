"""Names and initials set in DejaVu Sans by FreeType: cut to fit, anti-aliased, readable, rendered once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import ImageFont

from recordkit.bot.synthetic import SyntheticClock, SyntheticVideoTrack
from recordkit.recorder.labels import (
    AVATAR_RGB,
    FONT_PATH,
    avatar_colour,
    initials,
    initials_disc,
    label_font_px,
    layered,
    name_label,
    rgb_to_yuv,
    truncate,
)
from recordkit.recorder.layout import plane_view


@pytest.mark.parametrize(
    ("text", "max_width", "expected"),
    [
        ("Alice Martin", 1000, "Alice Martin"),
        ("Alice Martin", 80, "Alice…"),  # no space left before the ellipsis
        ("Alice Martin", 40, "Al…"),
        ("Alice Martin", 20, "…"),
        ("Alice Martin", 19, ""),  # not even the ellipsis fits
        ("", 100, ""),
    ],
)
def test_truncate_cuts_with_an_ellipsis_to_fit(text: str, max_width: int, expected: str) -> None:
    font = ImageFont.truetype(str(FONT_PATH), 20)
    assert truncate(text, font, max_width) == expected
    assert font.getlength(expected) <= max_width


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Ada Lovelace", "AL"),
        ("Carol Bot", "CB"),
        ("Ada", "A"),
        ("  béla   kovács ", "BK"),
        ("Jean-Luc de la Croix", "JC"),
        ("(guest) Bob", "GB"),
        ("", "?"),
        ("— ·", "?"),
        ("Œdipe", "Œ"),
    ],
)
def test_initials(name: str, expected: str) -> None:
    assert initials(name) == expected


def test_each_name_keeps_its_disc_colour() -> None:
    colours = {avatar_colour(f"Person {n}") for n in range(40)}
    assert len(colours) == len(AVATAR_RGB), "names spread over every colour"
    assert avatar_colour("Ada") == avatar_colour("Ada")
    assert all(40 <= y <= 130 for y, _, _ in colours), "dark enough for white letters on them"


def test_rgb_to_yuv_is_limited_range_bt601() -> None:
    assert rgb_to_yuv((0, 0, 0)) == (16, 128, 128)
    assert rgb_to_yuv((255, 255, 255)) == (235, 128, 128)
    assert rgb_to_yuv((255, 0, 0)) == (82, 90, 240)


def test_an_overlay_blends_its_layers_in_order() -> None:
    half = np.full((4, 4), 0.5)
    full = np.zeros((4, 4))
    full[:2, :2] = 1.0
    overlay = layered([(half, (16, 128, 128)), (full, (235, 64, 200))])
    planes = (np.full((6, 6), 200, np.uint8), np.full((3, 3), 100, np.uint8), np.full((3, 3), 150, np.uint8))
    overlay.blend(planes, 2, 2)
    luma = planes[0]
    assert luma[:2].tolist() == [[200] * 6] * 2 and luma[:, :2].tolist() == [[200] * 2] * 6, "only its rectangle"
    assert luma[2, 2] == 235 and luma[5, 5] == 108, "opaque on top; half-dark plate over 200 is (200 + 16) / 2"
    assert planes[1][1, 1] == 64 and planes[2][1, 1] == 200
    assert planes[1][2, 2] == 114 and planes[2][2, 2] == 139, "chroma halfway to neutral under the plate"


def test_labels_and_discs_are_rendered_once_per_name_and_size() -> None:
    assert name_label("Render Once", 20, 400) is name_label("Render Once", 20, 400)
    assert name_label("Render Once", 22, 400) is not name_label("Render Once", 20, 400)
    assert initials_disc("Render Once", 120) is initials_disc("Render Once", 120)


def test_label_size_follows_the_tile() -> None:
    assert [label_font_px(height) for height in (60, 134, 348, 530, 704, 1400)] == [12, 12, 22, 33, 36, 36]
    small, big = name_label("Ann", 12, 400), name_label("Ann", 33, 400)
    assert small is not None and big is not None
    assert small.height < 24 and big.height > 50 and all(v % 2 == 0 for v in (small.width, small.height))
    assert name_label("Ann", 22, 10) is None, "no room even for an ellipsis"


def picture_with_label(name: str, font_px: int) -> np.ndarray:
    """A bot's busy test picture with the name label blended on it, as RGB."""
    frame = SyntheticVideoTrack(SyntheticClock(), 640, 360, label="").frame_at(12)
    label = name_label(name, font_px, 600)
    assert label is not None
    label.blend((plane_view(frame, 0), plane_view(frame, 1), plane_view(frame, 2)), 20, 280)
    return frame.to_ndarray(format="rgb24")[280 : 280 + label.height, 20 : 20 + label.width]


def ocr(rgb: np.ndarray, folder: Path) -> str:
    """Tesseract's reading of one line of text in an image, enlarged 3× as it likes its letters."""
    path = folder / "line.png"
    image = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    image.reformat(width=rgb.shape[1] * 3, height=rgb.shape[0] * 3, interpolation="BICUBIC").to_image().save(path)
    # Debian's tesseract-ocr, which scripts/setup.sh installs: missing, the test fails rather than skips.
    command = ["tesseract", str(path), "-", "--psm", "7"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize(("name", "font_px"), [("Alice Martin", 22), ("Bob Okafor", 14), ("Grace Hopper", 12)])
def test_a_label_on_a_busy_picture_reads_as_the_name(name: str, font_px: int, tmp_path: Path) -> None:
    assert name in ocr(picture_with_label(name, font_px), tmp_path)
