"""The composite grid: where each participant's tile goes, and what the compositor draws in and around it."""

from __future__ import annotations

import itertools

import av
import numpy as np
import pytest

from recordkit.bot.marks import FLASH_LUMA_THRESHOLD, Region, detect_flashes, mean_luma
from recordkit.bot.synthetic import SyntheticClock, SyntheticVideoTrack
from recordkit.recorder.labels import avatar_colour, label_font_px, label_text, name_label
from recordkit.recorder.layout import (
    BACKGROUND_LUMA,
    OUTLINE_YUV,
    TILE_LUMA,
    Compositor,
    Rect,
    content_rect,
    grid,
    name_plate,
    outline_width,
    plane_view,
    spacing,
)

GRID_SHAPES = [
    # (participants, width, height) → (columns, rows, tile width, tile height)
    (1, 1280, 720, 1, 1, 1252, 704),
    (2, 1280, 720, 2, 1, 628, 354),
    (3, 1280, 720, 2, 2, 618, 348),
    (4, 1280, 720, 2, 2, 618, 348),
    (5, 1280, 720, 3, 2, 416, 234),
    (6, 1280, 720, 3, 2, 416, 234),
    (7, 1280, 720, 3, 3, 406, 228),
    (9, 1280, 720, 3, 3, 406, 228),
    (10, 1280, 720, 4, 3, 310, 174),
    (16, 1280, 720, 4, 4, 302, 170),
    (17, 1280, 720, 5, 4, 246, 138),
    (25, 1280, 720, 5, 5, 238, 134),
    (2, 720, 1280, 1, 2, 704, 396),  # portrait: one above the other
    (4, 720, 1280, 1, 4, 552, 310),
    (2, 1920, 1080, 2, 1, 942, 530),
    (1, 642, 362, 1, 1, 630, 354),
]


@pytest.mark.parametrize(("count", "width", "height", "cols", "rows", "tile_w", "tile_h"), GRID_SHAPES)
def test_grid_shape(count: int, width: int, height: int, cols: int, rows: int, tile_w: int, tile_h: int) -> None:
    tiles = grid(count, width, height)
    assert len(tiles) == count
    assert {(t.width, t.height) for t in tiles} == {(tile_w, tile_h)}
    assert len({t.x for t in tiles}) >= min(cols, count) and len({t.y for t in tiles}) == rows
    assert max(sum(1 for t in tiles if t.y == y) for y in {t.y for t in tiles}) == cols


def test_grid_places_tiles_in_join_order_and_centres_the_last_row() -> None:
    assert grid(3, 1280, 720) == [Rect(18, 8, 618, 348), Rect(644, 8, 618, 348), Rect(330, 364, 618, 348)]
    assert grid(2, 1280, 720) == [Rect(8, 182, 628, 354), Rect(644, 182, 628, 354)]
    assert grid(5, 1280, 720)[3:] == [Rect(220, 364, 416, 234), Rect(644, 364, 416, 234)]
    assert grid(0, 1280, 720) == []


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (720, 1280), (1920, 1080), (642, 362), (640, 360)])
def test_tiles_are_16_9_apart_by_a_gap_and_inside_a_margin(width: int, height: int) -> None:
    gap = spacing(width, height)
    assert gap >= 4 and gap % 2 == 0
    for count in range(1, 31):
        tiles = grid(count, width, height)
        assert len({(t.width, t.height) for t in tiles}) == 1, "every tile the same size"
        for tile in tiles:
            assert all(value % 2 == 0 for value in (tile.x, tile.y, tile.width, tile.height)), tile
            assert abs(tile.width / tile.height - 16 / 9) < 0.02, (count, tile)
            assert tile.x >= gap and tile.x + tile.width <= width - gap, (count, tile)
            assert tile.y >= gap and tile.y + tile.height <= height - gap, (count, tile)
        for a, b in itertools.combinations(tiles, 2):
            apart = (
                a.x + a.width + gap <= b.x
                or b.x + b.width + gap <= a.x
                or a.y + a.height + gap <= b.y
                or b.y + b.height + gap <= a.y
            )
            assert apart, (count, a, b)


def test_a_tiny_frame_still_holds_one_tile() -> None:
    assert grid(1, 2, 2) == [Rect(0, 0, 2, 2)]


@pytest.mark.parametrize(
    ("source", "tile", "expected"),
    [
        ((640, 360), Rect(0, 0, 640, 720), Rect(0, 180, 640, 360)),  # letterboxed
        ((640, 480), Rect(0, 0, 640, 360), Rect(80, 0, 480, 360)),  # pillarboxed
        ((1280, 720), Rect(640, 360, 640, 360), Rect(640, 360, 640, 360)),
        ((360, 640), Rect(0, 0, 1280, 720), Rect(438, 0, 404, 720)),  # portrait phone in a landscape tile
        ((320, 180), Rect(18, 8, 618, 348), Rect(18, 8, 618, 348)),  # scaled up to fill it
        ((640, 360), Rect(18, 8, 618, 348), Rect(18, 8, 618, 348)),  # a little bigger: cropped to it
        ((1280, 720), Rect(14, 8, 1252, 704), Rect(14, 8, 1252, 704)),
        ((680, 380), Rect(18, 8, 618, 348), Rect(18, 8, 618, 346)),  # too much bigger to crop: scaled
    ],
)
def test_pictures_are_fitted_in_their_tile(source: tuple[int, int], tile: Rect, expected: Rect) -> None:
    assert content_rect(*source, tile) == expected


def flat_frame(width: int, height: int, luma: int) -> av.VideoFrame:
    data = np.full((height * 3 // 2, width), 128, np.uint8)
    data[:height] = luma
    return av.VideoFrame.from_ndarray(data, format="yuv420p")


def region_luma(frame: av.VideoFrame, rect: Rect) -> np.ndarray:
    return plane_view(frame, 0)[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]


def region_chroma(frame: av.VideoFrame, rect: Rect) -> tuple[np.ndarray, np.ndarray]:
    y, x, h, w = rect.y // 2, rect.x // 2, rect.height // 2, rect.width // 2
    return plane_view(frame, 1)[y : y + h, x : x + w], plane_view(frame, 2)[y : y + h, x : x + w]


def without(tile: Rect, label: Rect) -> np.ndarray:
    """A mask over the tile of the pixels outside the label."""
    mask = np.ones((tile.height, tile.width), bool)
    mask[label.y - tile.y : label.y - tile.y + label.height, label.x - tile.x : label.x - tile.x + label.width] = False
    return mask


def test_tiles_show_their_participant_fitted_on_grey_with_a_dark_background_around() -> None:
    compositor = Compositor(1280, 720)
    compositor.join("a", "Ann")
    compositor.join("b", "Bob")
    compositor.update("a", flat_frame(640, 360, 60))  # a little bigger than its 628x354 tile: cropped
    compositor.update("b", flat_frame(480, 640, 120))  # portrait: bars left and right
    frame = compositor.compose()
    assert (frame.width, frame.height, frame.format.name) == (1280, 720, "yuv420p")
    tiles = compositor.tiles()
    assert list(tiles) == ["a", "b"]
    a, b = tiles["a"], tiles["b"]
    b_content = content_rect(480, 640, b)
    assert b_content == Rect(824, 182, 266, 354)
    a_label, b_label = name_plate("Ann", a), name_plate("Bob", b)
    assert a_label is not None and b_label is not None
    assert np.all(region_luma(frame, a)[without(a, a_label[1])] == 60)
    assert np.all(region_luma(frame, b_content)[without(b_content, b_label[1])[:, : b_content.width]] == 120)
    assert np.all(region_luma(frame, Rect(b.x, b.y, b_content.x - b.x, 280)) == TILE_LUMA)  # the bars
    assert np.all(region_luma(frame, Rect(0, 0, 1280, a.y)) == BACKGROUND_LUMA)
    assert np.all(region_luma(frame, Rect(a.x + a.width, a.y, b.x - a.x - a.width, a.height)) == BACKGROUND_LUMA)


@pytest.mark.parametrize("with_video", [True, False])
def test_every_tile_carries_its_name_antialiased_in_the_bottom_left_corner(with_video: bool) -> None:
    compositor = Compositor(1280, 720)
    compositor.join("a", "Alice Martin")
    if with_video:
        compositor.update("a", flat_frame(1280, 720, 180))
    frame = compositor.compose()
    tile = compositor.tiles()["a"]
    plate = name_plate("Alice Martin", tile)
    assert plate is not None
    label, where = plate
    assert where.x - tile.x == tile.y + tile.height - (where.y + where.height) > 0, "inset alike from both edges"
    assert where.x - tile.x < 40 and where.width < tile.width / 3
    luma = region_luma(frame, where).astype(int)
    underneath = 180 if with_video else TILE_LUMA
    assert np.count_nonzero(luma >= 225) > 100, "white letters"
    assert np.median(luma) < underneath * 0.5 + 16, "on a dark plate"
    # Anti-aliased: the letters' edges take every shade between the plate and white.
    assert len(np.unique(luma)) > 40
    # What is drawn is the cached rendering of the name, blended as it says.
    expected = np.full((label.height, label.width), underneath, np.uint16)
    expected = (expected * label.transparency[0] + label.premultiplied[0] + 127) // 255
    assert np.array_equal(luma, expected)


def test_a_name_too_long_for_its_tile_is_cut_with_an_ellipsis() -> None:
    compositor = Compositor(1280, 720)
    long_name = "Maximiliane Alexandra von Hohenzollern-Sigmaringen und Württemberg"
    for n in range(9):
        compositor.join(str(n), long_name if n == 4 else f"P{n}")
    frame = compositor.compose()
    tile = compositor.tiles()["4"]
    plate = name_plate(long_name, tile)
    assert plate is not None
    label, where = plate
    inset = where.x - tile.x
    assert where.x + where.width <= tile.x + tile.width - inset, "inside the tile, inset on both sides"
    shown = label_text(long_name, label_font_px(tile.height), tile.width - 2 * inset)
    assert shown.endswith("…") and long_name.startswith(shown[:-1]) and len(shown) > 20
    # The tile shows exactly that: the cut name drawn as it is, ellipsis and all.
    cut = name_label(shown, label_font_px(tile.height), 10_000)
    assert cut is not None and cut.width == label.width
    assert np.array_equal(cut.premultiplied[0], label.premultiplied[0])
    luma = region_luma(frame, where)
    assert np.array_equal(luma, (TILE_LUMA * label.transparency[0] + label.premultiplied[0] + 127) // 255)


def test_participant_without_video_gets_their_initials_on_a_disc() -> None:
    compositor = Compositor(1280, 720)
    compositor.join("a", "Ann Lee")
    compositor.join("b", "Béla Kovács")
    compositor.update("a", flat_frame(640, 360, 60))
    frame = compositor.compose()
    tile = compositor.tiles()["b"]
    luma = region_luma(frame, tile)
    u, v = region_chroma(frame, tile)
    assert np.all(luma[:20, :20] == TILE_LUMA) and np.all(luma[:20, -20:] == TILE_LUMA), "a grey tile"
    colour = avatar_colour("Béla Kovács")
    middle = (slice(tile.height // 2 - 60, tile.height // 2 + 60), slice(tile.width // 2 - 60, tile.width // 2 + 60))
    disc = luma[middle].astype(int)
    assert np.count_nonzero(disc >= 225) > 300, "white initials"
    assert np.count_nonzero(np.abs(disc - colour[0]) <= 1) > 3000, "on a disc of the name's colour"
    chroma_middle = (slice(middle[0].start // 2, middle[0].stop // 2), slice(middle[1].start // 2, middle[1].stop // 2))
    assert np.count_nonzero(np.abs(u[chroma_middle].astype(int) - colour[1]) <= 1) > 1000
    assert np.count_nonzero(np.abs(v[chroma_middle].astype(int) - colour[2]) <= 1) > 1000
    # In the tile's middle, and round: the disc's widest row is as wide as its tallest column.
    rows = np.flatnonzero((np.abs(luma.astype(int) - colour[0]) <= 1).sum(axis=1) > 10)
    cols = np.flatnonzero((np.abs(luma.astype(int) - colour[0]) <= 1).sum(axis=0) > 10)
    assert (
        abs((rows.min() + rows.max()) / 2 - tile.height / 2) <= 2
        and abs((cols.min() + cols.max()) / 2 - tile.width / 2) <= 2
    )
    assert abs((rows.max() - rows.min()) - (cols.max() - cols.min())) <= 2


def test_video_ending_turns_the_tile_into_initials_and_back() -> None:
    compositor = Compositor(640, 360)
    compositor.join("a", "Ann")
    compositor.update("a", flat_frame(640, 360, 90))
    tile = compositor.tiles()["a"]
    plate = name_plate("Ann", tile)
    assert plate is not None
    outside_label = without(tile, plate[1])
    assert np.all(region_luma(compositor.compose(), tile)[outside_label] == 90)
    compositor.video_ended("a")
    luma = region_luma(compositor.compose(), tile)
    assert np.count_nonzero(luma == TILE_LUMA) > luma.size / 2 and np.count_nonzero(luma >= 225) > 100
    compositor.update("a", flat_frame(320, 240, 90))  # back, at 4:3: the initials must not show in the bars
    luma = region_luma(compositor.compose(), tile)
    content = content_rect(320, 240, tile)
    bars = content.x - tile.x
    assert np.all(luma[:, :bars][outside_label[:, :bars]] == TILE_LUMA)
    assert np.all(luma[:, bars : bars + content.width][outside_label[:, bars : bars + content.width]] == 90)


def ring(frame: av.VideoFrame, tile: Rect, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Y, U and V samples of the band `width` pixels wide around a tile."""
    outer = Rect(tile.x - width, tile.y - width, tile.width + 2 * width, tile.height + 2 * width)
    inside = np.zeros((outer.height, outer.width), bool)
    inside[width:-width, width:-width] = True
    luma = region_luma(frame, outer)[~inside]
    u, v = region_chroma(frame, outer)
    return luma, u[~inside[::2, ::2]], v[~inside[::2, ::2]]


def test_the_speaker_is_outlined_in_the_gap_and_the_outline_follows_them() -> None:
    compositor = Compositor(1280, 720)
    for name in "abc":
        compositor.join(name, name.upper())
        compositor.update(name, flat_frame(640, 360, 80))
    before = compositor.compose()
    tiles, width = compositor.tiles(), outline_width(1280, 720)
    assert width == 4
    compositor.set_speaker("b")
    frame = compositor.compose()
    luma, u, v = ring(frame, tiles["b"], width)
    assert np.all(luma == OUTLINE_YUV[0]) and np.all(u == OUTLINE_YUV[1]) and np.all(v == OUTLINE_YUV[2])
    assert OUTLINE_YUV[0] < FLASH_LUMA_THRESHOLD - 60, "bright, but far from a flash"
    for name in "abc":  # the pictures themselves are untouched
        assert np.array_equal(region_luma(frame, tiles[name]), region_luma(before, tiles[name]))
    assert np.all(ring(frame, tiles["a"], width)[0] == BACKGROUND_LUMA)
    compositor.set_speaker("c")
    frame = compositor.compose()
    assert np.all(ring(frame, tiles["b"], width)[0] == BACKGROUND_LUMA)
    assert np.all(ring(frame, tiles["c"], width)[0] == OUTLINE_YUV[0])
    compositor.leave("a")  # the grid re-flows: the outline goes round c's new tile
    frame = compositor.compose()
    assert np.all(ring(frame, compositor.tiles()["c"], width)[0] == OUTLINE_YUV[0])
    assert np.all(ring(frame, compositor.tiles()["b"], width)[0] == BACKGROUND_LUMA)
    compositor.set_speaker(None)
    assert np.all(ring(compositor.compose(), compositor.tiles()["c"], width)[0] == BACKGROUND_LUMA)
    compositor.set_speaker("somebody who left")
    assert np.all(plane_view(compositor.compose(), 1) == 128)


@pytest.mark.parametrize(
    ("count", "flashing", "regions"),
    [
        # The regions the recorder's end-to-end tests watch: the left and right halves' middle for two
        # participants, the quarters for four.
        (2, 0, [Region(0.0, 0.25, 0.5, 0.5), Region(0.5, 0.25, 0.5, 0.5)]),
        (4, 0, [Region(0.0, 0.0, 0.5, 0.5), Region(0.5, 0.0, 0.5, 0.5), Region(0.0, 0.5, 0.5, 0.5)]),
        (1, 0, [Region(0.0, 0.0, 1.0, 1.0)]),
    ],
)
def test_a_flash_still_whitens_its_tile_under_label_and_outline_and_nothing_else_does(
    count: int, flashing: int, regions: list[Region]
) -> None:
    clock = SyntheticClock()
    bots = [SyntheticVideoTrack(clock, 640, 360, label=f"bot{n}") for n in range(count)]
    compositor = Compositor(1280, 720)
    for n in range(count):
        compositor.join(f"bot{n}", f"Bot Number {n}")
    frames = []
    for index in range(25, 36):  # frame 30 is the flash; the flashing bot is the speaker throughout
        for n, bot in enumerate(bots):
            compositor.update(f"bot{n}", bot.frame_at(index if n == flashing else index + 15))
        compositor.set_speaker(f"bot{flashing}")
        frames.append(av.VideoFrame.from_ndarray(compositor.compose().to_ndarray(), format="yuv420p"))
    assert detect_flashes(frames, region=regions[0]) == [5.0]
    for region in regions[1:]:
        assert detect_flashes(frames, region=region) == []
    assert mean_luma(frames[5], regions[0]) >= FLASH_LUMA_THRESHOLD + 10, "with room to spare"


def test_bot_picture_is_copied_pixel_for_pixel_when_cropped() -> None:
    clock = SyntheticClock()
    bot = SyntheticVideoTrack(clock, 640, 360, label="")
    compositor = Compositor(1280, 720)
    for n in range(3):
        compositor.join(f"bot{n}", f"Bot {n}")
    sent = bot.frame_at(7)
    compositor.update("bot2", sent)
    frame = compositor.compose()
    tile = compositor.tiles()["bot2"]
    assert (tile.width, tile.height) == (618, 348)
    plate = name_plate("Bot 2", tile)
    assert plate is not None
    shown = region_luma(frame, tile)
    centre = plane_view(sent, 0)[6 : 6 + 348, 10 : 10 + 618]
    mask = without(tile, plate[1])
    assert np.array_equal(shown[mask], centre[mask])


def test_tiles_stay_put_until_someone_joins_or_leaves_then_reflow_in_join_order() -> None:
    compositor = Compositor(1280, 720)
    for name in "abc":
        compositor.join(name, name.upper())
        compositor.update(name, flat_frame(640, 360, 50 + ord(name)))
    first = compositor.tiles()
    compositor.compose()
    compositor.update("b", flat_frame(640, 360, 99))
    compositor.join("a", "A")  # a known participant: no re-flow
    compositor.compose()
    assert compositor.tiles() == first
    compositor.leave("a")
    frame = compositor.compose()
    assert list(compositor.tiles()) == ["b", "c"]
    assert compositor.tiles() == dict(zip("bc", grid(2, 1280, 720), strict=True))
    # Nothing of the old grid is left behind: outside the two name labels, only b's and c's pictures and the
    # background.
    luma = plane_view(frame, 0).copy()
    for name in "bc":
        plate = name_plate(name.upper(), compositor.tiles()[name])
        assert plate is not None
        where = plate[1]
        luma[where.y : where.y + where.height, where.x : where.x + where.width] = BACKGROUND_LUMA
    assert set(np.unique(luma)) == {BACKGROUND_LUMA, 99, 50 + ord("c")}
    compositor.join("d", "Dee")
    assert list(compositor.tiles()) == ["b", "c", "d"]


def test_a_new_name_redraws_the_tile_without_a_trace_of_the_old_label() -> None:
    compositor = Compositor(1280, 720)
    compositor.join("a", "A very long name to begin with")
    compositor.update("a", flat_frame(480, 640, 90))  # portrait: the label lies partly on the bars
    compositor.compose()
    compositor.join("a", "Al")
    renamed = compositor.compose()
    fresh = Compositor(1280, 720)
    fresh.join("a", "Al")
    fresh.update("a", flat_frame(480, 640, 90))
    assert np.array_equal(renamed.to_ndarray(), fresh.compose().to_ndarray())


def test_only_changed_tiles_are_redrawn_frames_are_fresh_and_labels_rendered_once() -> None:
    compositor = Compositor(1280, 720)
    compositor.join("a", "Ada Once")
    compositor.join("b", "Bea Once")
    compositor.update("a", flat_frame(640, 360, 60))
    compositor.update("b", flat_frame(640, 360, 70))
    first = compositor.compose()
    renders = name_label.cache_info().misses
    a_tile, b_tile = compositor.tiles()["a"], compositor.tiles()["b"]
    for _ in range(30):
        compositor.update("a", flat_frame(640, 360, 80))
        second = compositor.compose()
    assert name_label.cache_info().misses == renders
    assert np.all(region_luma(first, a_tile)[:100] == 60)  # earlier frame untouched
    assert np.all(region_luma(second, a_tile)[:100] == 80)
    assert np.all(region_luma(second, b_tile)[:100] == 70)
    # The label is blended onto each fresh picture, never onto the last blend: the 30th frame is the first.
    a_after_one = Compositor(1280, 720)
    a_after_one.join("a", "Ada Once")
    a_after_one.join("b", "Bea Once")
    a_after_one.update("a", flat_frame(640, 360, 80))
    a_after_one.update("b", flat_frame(640, 360, 70))
    assert np.array_equal(second.to_ndarray(), a_after_one.compose().to_ndarray())


def test_any_input_format_is_scaled_into_place() -> None:
    compositor = Compositor(1280, 720)
    compositor.join("a", "A")
    rgb = np.zeros((720, 1280, 3), np.uint8)
    rgb[:, :, :] = 255
    compositor.update("a", av.VideoFrame.from_ndarray(rgb, format="rgb24"))
    tile = compositor.tiles()["a"]
    assert region_luma(compositor.compose(), tile)[:100].min() >= 234  # white in limited range


def test_unknown_participant_frames_are_refused() -> None:
    compositor = Compositor(640, 360)
    with pytest.raises(KeyError):
        compositor.update("nobody", flat_frame(64, 36, 10))
    with pytest.raises(ValueError, match="even"):
        Compositor(641, 360)
