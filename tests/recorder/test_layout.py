"""The composite grid: where each participant's tile goes, and what the compositor draws in it."""

from __future__ import annotations

import itertools

import av
import numpy as np
import pytest

from recordkit.bot.marks import FLASH_LUMA_THRESHOLD, Region, mean_luma
from recordkit.bot.synthetic import SyntheticClock, SyntheticVideoTrack
from recordkit.recorder.layout import (
    BLACK_LUMA,
    NAME_TEXT_LUMA,
    NAME_TILE_LUMA,
    Compositor,
    Rect,
    content_rect,
    grid,
    name_mask,
    plane_view,
)

GRID_SHAPES = [
    # (participants, width, height) → (columns, rows, tile width, tile height)
    (1, 1280, 720, 1, 1, 1280, 720),
    (2, 1280, 720, 2, 1, 640, 720),
    (3, 1280, 720, 2, 2, 640, 360),
    (4, 1280, 720, 2, 2, 640, 360),
    (5, 1280, 720, 3, 2, 426, 360),
    (6, 1280, 720, 3, 2, 426, 360),
    (7, 1280, 720, 3, 3, 426, 240),
    (9, 1280, 720, 3, 3, 426, 240),
    (10, 1280, 720, 4, 3, 320, 240),
    (16, 1280, 720, 4, 4, 320, 180),
    (17, 1280, 720, 5, 4, 256, 180),
    (25, 1280, 720, 5, 5, 256, 144),
    (2, 720, 1280, 1, 2, 720, 640),  # portrait: one above the other
    (4, 720, 1280, 1, 4, 720, 320),
    (2, 1920, 1080, 2, 1, 960, 1080),
    (1, 642, 362, 1, 1, 642, 362),
]


@pytest.mark.parametrize(("count", "width", "height", "cols", "rows", "tile_w", "tile_h"), GRID_SHAPES)
def test_grid_shape(count: int, width: int, height: int, cols: int, rows: int, tile_w: int, tile_h: int) -> None:
    tiles = grid(count, width, height)
    assert len(tiles) == count
    assert {(t.width, t.height) for t in tiles} == {(tile_w, tile_h)}
    assert len({t.x for t in tiles}) >= min(cols, count) and len({t.y for t in tiles}) == rows
    assert max(sum(1 for t in tiles if t.y == y) for y in {t.y for t in tiles}) == cols


def test_grid_places_tiles_in_join_order_and_centres_the_last_row() -> None:
    assert grid(3, 1280, 720) == [Rect(0, 0, 640, 360), Rect(640, 0, 640, 360), Rect(320, 360, 640, 360)]
    assert grid(2, 1280, 720) == [Rect(0, 0, 640, 720), Rect(640, 0, 640, 720)]
    assert grid(5, 1280, 720)[3:] == [Rect(214, 360, 426, 360), Rect(640, 360, 426, 360)]
    assert grid(0, 1280, 720) == []


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (720, 1280), (1920, 1080), (642, 362), (2, 2)])
def test_grid_tiles_are_even_inside_and_apart(width: int, height: int) -> None:
    for count in range(1, 31 if width > 2 else 2):
        tiles = grid(count, width, height)
        for tile in tiles:
            assert all(value % 2 == 0 for value in (tile.x, tile.y, tile.width, tile.height)), tile
            assert 0 <= tile.x and tile.x + tile.width <= width and 0 <= tile.y and tile.y + tile.height <= height
        for a, b in itertools.combinations(tiles, 2):
            apart = a.x + a.width <= b.x or b.x + b.width <= a.x or a.y + a.height <= b.y or b.y + b.height <= a.y
            assert apart, (count, a, b)


@pytest.mark.parametrize(
    ("source", "tile", "expected"),
    [
        ((640, 360), Rect(0, 0, 640, 720), Rect(0, 180, 640, 360)),  # letterboxed
        ((640, 480), Rect(0, 0, 640, 360), Rect(80, 0, 480, 360)),  # pillarboxed
        ((1280, 720), Rect(640, 360, 640, 360), Rect(640, 360, 640, 360)),
        ((360, 640), Rect(0, 0, 1280, 720), Rect(438, 0, 404, 720)),  # portrait phone in a landscape grid
        ((641, 359), Rect(0, 0, 320, 180), Rect(0, 0, 320, 180)),
    ],
)
def test_content_keeps_aspect_ratio(source: tuple[int, int], tile: Rect, expected: Rect) -> None:
    assert content_rect(*source, tile) == expected


def flat_frame(width: int, height: int, luma: int) -> av.VideoFrame:
    data = np.full((height * 3 // 2, width), 128, np.uint8)
    data[:height] = luma
    return av.VideoFrame.from_ndarray(data, format="yuv420p")


def region_luma(frame: av.VideoFrame, rect: Rect) -> np.ndarray:
    return plane_view(frame, 0)[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]


def test_tiles_show_their_participant_with_bars_around() -> None:
    compositor = Compositor(1280, 720)
    compositor.join("a", "Ann")
    compositor.join("b", "Bob")
    compositor.update("a", flat_frame(640, 360, 60))  # 16:9 in a 640x720 tile: bars above and below
    compositor.update("b", flat_frame(480, 640, 120))  # portrait: bars left and right
    frame = compositor.compose()
    assert (frame.width, frame.height, frame.format.name) == (1280, 720, "yuv420p")
    tiles = compositor.tiles()
    assert list(tiles) == ["a", "b"]
    a_content = content_rect(640, 360, tiles["a"])
    b_content = content_rect(480, 640, tiles["b"])
    assert a_content == Rect(0, 180, 640, 360) and b_content == Rect(690, 0, 540, 720)
    assert np.all(region_luma(frame, a_content) == 60)
    assert np.all(region_luma(frame, Rect(0, 0, 640, 180)) == BLACK_LUMA)
    assert np.all(region_luma(frame, b_content) == 120)
    assert np.all(region_luma(frame, Rect(640, 0, 50, 720)) == BLACK_LUMA)


def test_participant_without_video_gets_a_dark_tile_with_their_name() -> None:
    compositor = Compositor(1280, 720)
    compositor.join("a", "Ann")
    compositor.join("b", "Béla Kovács")
    compositor.update("a", flat_frame(640, 360, 60))
    frame = compositor.compose()
    tile = region_luma(frame, compositor.tiles()["b"])
    assert np.count_nonzero(tile == NAME_TILE_LUMA) > tile.size * 0.8  # dark grey, not black
    text = tile == NAME_TEXT_LUMA
    assert text.any()
    rows, cols = np.nonzero(text)
    # The name sits in the middle of the tile and is wide enough to read.
    assert abs((rows.min() + rows.max()) / 2 - tile.shape[0] / 2) < 8
    assert abs((cols.min() + cols.max()) / 2 - tile.shape[1] / 2) < 8
    assert cols.max() - cols.min() > tile.shape[1] // 3


def test_video_ending_turns_the_tile_into_a_name_tile_and_back() -> None:
    compositor = Compositor(640, 360)
    compositor.join("a", "Ann")
    compositor.update("a", flat_frame(640, 360, 90))
    assert np.all(region_luma(compositor.compose(), Rect(0, 0, 640, 360)) == 90)
    compositor.video_ended("a")
    assert np.any(region_luma(compositor.compose(), Rect(0, 0, 640, 360)) == NAME_TEXT_LUMA)
    compositor.update("a", flat_frame(320, 240, 90))  # back, at 4:3: the name must not show in the bars
    luma = region_luma(compositor.compose(), Rect(0, 0, 640, 360))
    assert np.all(luma[:, :80] == BLACK_LUMA) and np.all(luma[:, 80:560] == 90)


def test_bot_picture_survives_the_grid_and_its_flash_whitens_its_tile() -> None:
    clock = SyntheticClock()
    bots = [SyntheticVideoTrack(clock, 640, 360, label=f"bot{n}") for n in range(3)]
    compositor = Compositor(1280, 720)
    for n in range(3):
        compositor.join(f"bot{n}", f"Bot {n}")
    compositor.update("bot0", bots[0].frame_at(30))  # a flash frame
    compositor.update("bot1", bots[1].frame_at(31))
    sent = bots[2].frame_at(7)
    compositor.update("bot2", sent)
    frame = compositor.compose()
    tiles = compositor.tiles()

    def tile_luma(name: str) -> float:
        t = tiles[name]
        return mean_luma(frame, Region.from_pixels(t.x, t.y, t.width, t.height, 1280, 720))

    assert tile_luma("bot0") >= FLASH_LUMA_THRESHOLD
    assert tile_luma("bot1") < FLASH_LUMA_THRESHOLD and tile_luma("bot2") < FLASH_LUMA_THRESHOLD
    # A 640x360 bot in a 640x360 tile is copied pixel for pixel: its frame number stays readable.
    assert np.array_equal(region_luma(frame, tiles["bot2"]), plane_view(sent, 0))


def test_tiles_stay_put_until_someone_joins_or_leaves_then_reflow_in_join_order() -> None:
    compositor = Compositor(1280, 720)
    for name in "abc":
        compositor.join(name, name.upper())
        compositor.update(name, flat_frame(640, 360, 50 + ord(name)))
    first = compositor.tiles()
    compositor.compose()
    compositor.update("b", flat_frame(640, 360, 99))
    compositor.join("a", "Ann again")  # a known participant: no re-flow
    compositor.compose()
    assert compositor.tiles() == first
    compositor.leave("a")
    frame = compositor.compose()
    assert list(compositor.tiles()) == ["b", "c"]
    assert compositor.tiles() == dict(zip("bc", grid(2, 1280, 720), strict=True))
    # Nothing of the old grid is left behind: only b's and c's pictures and black.
    assert set(np.unique(plane_view(frame, 0))) == {BLACK_LUMA, 99, 50 + ord("c")}
    compositor.join("d", "Dee")
    assert list(compositor.tiles()) == ["b", "c", "d"]


def test_only_changed_tiles_are_redrawn_and_frames_are_fresh() -> None:
    compositor = Compositor(1280, 720)
    compositor.join("a", "A")
    compositor.join("b", "B")
    compositor.update("a", flat_frame(640, 360, 60))
    compositor.update("b", flat_frame(640, 360, 70))
    first = compositor.compose()
    compositor.update("a", flat_frame(640, 360, 80))
    second = compositor.compose()
    assert np.all(region_luma(first, compositor.tiles()["a"])[180:540] == 60)  # earlier frame untouched
    assert np.all(region_luma(second, content_rect(640, 360, compositor.tiles()["a"])) == 80)
    assert np.all(region_luma(second, content_rect(640, 360, compositor.tiles()["b"])) == 70)


def test_any_input_format_is_scaled_into_place() -> None:
    compositor = Compositor(1280, 720)
    compositor.join("a", "A")
    rgb = np.zeros((720, 1280, 3), np.uint8)
    rgb[:, :, :] = 255
    compositor.update("a", av.VideoFrame.from_ndarray(rgb, format="rgb24"))
    assert plane_view(compositor.compose(), 0).min() >= 234  # white in limited range


def test_unknown_participant_frames_are_refused() -> None:
    compositor = Compositor(640, 360)
    with pytest.raises(KeyError):
        compositor.update("nobody", flat_frame(64, 36, 10))
    with pytest.raises(ValueError, match="even"):
        Compositor(641, 360)


@pytest.mark.parametrize(
    ("name", "width", "height", "shape"),
    [
        ("Ann", 400, 100, (7 * 14, 17 * 14)),  # as big as fits: limited by the height
        ("Ann", 60, 100, (7 * 3, 17 * 3)),  # limited by the width
        ("A very long participant name indeed", 100, 30, (7, 95)),  # cut, ending in ".."
        ("", 100, 30, (7 * 4, 5 * 4)),  # "?"
        ("Ann", 100, 6, (0, 0)),  # no room at all
    ],
)
def test_name_mask_fits(name: str, width: int, height: int, shape: tuple[int, int]) -> None:
    mask = name_mask(name, width, height)
    assert mask.shape == shape
    assert mask.shape[0] <= height and mask.shape[1] <= width


def test_name_mask_folds_accents_and_marks_unknown_characters() -> None:
    assert np.array_equal(name_mask("josé", 1000, 7), name_mask("JOSE", 1000, 7))
    assert np.array_equal(name_mask("李", 1000, 7), name_mask("?", 1000, 7))
    assert np.array_equal(name_mask("a  b", 1000, 7), name_mask("A B", 1000, 7))
