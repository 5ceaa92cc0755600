"""The composite picture: a grid of the participants in join order, laid out like a meeting
(recordings.md §9.3, "Layout").

Tiles are 16:9, all the same size, with a gap between them and a margin around them on a dark background.
Each shows its participant's latest video frame fitted in it (on the tile's grey where the shapes differ), or,
for a participant without video, their initials on a disc; either way their name on a plate in the tile's
bottom-left corner. The active speaker's tile is outlined in the gap around it. The grid is a pure function of
the number of participants and the output size, so a participant keeps their tile while nobody joins or leaves;
when someone does, the grid re-flows and everyone takes their place in join order again.

`Compositor` keeps one yuv420p canvas for the whole recording and redraws only the tiles whose participant sent
a new frame since the last composition (and the outline when the speaker changes); scaling is swscale's,
through one reformatter per participant, so its context is set up once per input size instead of once per
frame. Names and initials are rendered once per (name, size) by `labels`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from recordkit.recorder.labels import Overlay, initials_disc, label_font_px, name_label, rgb_to_yuv

# Tiles are 16:9, the shape of nearly every camera and screen share, whatever the frame's own shape.
TILE_ASPECT = 16 / 9
# A picture at most this much bigger than its tile is cropped to it (≤ 2.5 % off each edge) instead of scaled:
# a 640x360 camera in a 618x348 tile stays sharp, and the copy costs a tenth of a rescale.
CROP_TOLERANCE = 0.05
# Limited-range YUV: black (for what is painted onto the composite, like watermarks), the background around the
# tiles, and the grey of a tile behind its picture or initials. The outline is a bright blue, far from a sync
# flash's white in luma and easy to tell by its chroma.
BLACK_LUMA = 16
BACKGROUND_LUMA = 28
TILE_LUMA = 50
NEUTRAL_CHROMA = 128
OUTLINE_YUV = rgb_to_yuv((66, 133, 244))


@dataclass(frozen=True)
class Rect:
    """A rectangle of the output frame in pixels; every edge is on an even pixel so 4:2:0 chroma lines up."""

    x: int
    y: int
    width: int
    height: int


def spacing(width: int, height: int) -> int:
    """The gap between tiles and the margin around them: 8 px on a 720p frame, in proportion on others."""
    return _even_floor(min(width, height) / 90)


def outline_width(width: int, height: int) -> int:
    """The speaker's outline: half the gap, so neighbours' outlines could never touch."""
    return _even_floor(spacing(width, height) / 2)


def grid(count: int, width: int, height: int) -> list[Rect]:
    """The tiles of `count` participants on a `width`×`height` frame, in join order (row by row).

    The column count is the one that makes the tiles biggest; ties go to fewer empty cells, then to the frame's
    long side (so two people sit side by side on a landscape frame and one above the other on a portrait one).
    That gives 1 → one tile, 2 → 2×1, 3–4 → 2×2, 5–6 → 3×2, 7–9 → 3×3, … 21–25 → 5×5 on a 16:9 frame. The grid
    is centred, and so is an incomplete last row.
    """
    if count <= 0:
        return []
    gap = spacing(width, height)
    best: tuple[tuple[int, int, int], int, tuple[int, int]] | None = None
    for cols in range(1, count + 1):
        rows = math.ceil(count / cols)
        cell_w, cell_h = (width - (cols + 1) * gap) / cols, (height - (rows + 1) * gap) / rows
        if cell_w < 2 or cell_h < 2:
            continue
        tile = fit(TILE_ASPECT, 1.0, _even_floor(cell_w), _even_floor(cell_h))
        # Sorting key: bigger tiles, fewer cells, then more columns when landscape (more rows when portrait).
        key = (tile[0] * tile[1], -cols * rows, cols if width >= height else -cols)
        if best is None or key > best[0]:
            best = (key, cols, tile)
    if best is None:
        raise ValueError(f"{count} tiles do not fit on a {width}x{height} frame")
    _, columns, (tile_w, tile_h) = best
    rows = math.ceil(count / columns)
    top = _even_floor((height - rows * tile_h - (rows - 1) * gap) / 2)
    tiles: list[Rect] = []
    for row in range(rows):
        in_row = min(columns, count - row * columns)
        left = _even_floor((width - in_row * tile_w - (in_row - 1) * gap) / 2)
        y = top + row * (tile_h + gap)
        tiles += [Rect(left + col * (tile_w + gap), y, tile_w, tile_h) for col in range(in_row)]
    return tiles


def fit(source_width: float, source_height: float, width: int, height: int) -> tuple[int, int]:
    """The largest even size with the source's aspect ratio that fits in `width`×`height` (at least 2×2)."""
    scale = min(width / source_width, height / source_height)
    return (
        max(2, min(_even_floor(width), _even_round(source_width * scale))),
        max(2, min(_even_floor(height), _even_round(source_height * scale))),
    )


def crops(source_width: int, source_height: int, tile: Rect) -> bool:
    """Whether a picture of this size is cropped to the tile at 1:1 rather than scaled (see CROP_TOLERANCE)."""
    most = 1 + CROP_TOLERANCE
    return tile.width <= source_width <= tile.width * most and tile.height <= source_height <= tile.height * most


def content_rect(source_width: int, source_height: int, tile: Rect) -> Rect:
    """Where a `source_width`×`source_height` picture lands in a tile: scaled to fit, centred (or the whole tile,
    when it is cropped to it)."""
    if crops(source_width, source_height, tile):
        return tile
    w, h = fit(source_width, source_height, tile.width, tile.height)
    return Rect(tile.x + _even_floor((tile.width - w) / 2), tile.y + _even_floor((tile.height - h) / 2), w, h)


def name_plate(name: str, tile: Rect) -> tuple[Overlay, Rect] | None:
    """A participant's name label for a tile and where it goes: the bottom-left corner, inset by half the type
    size. None when the tile is too small for one."""
    font_px = label_font_px(tile.height)
    inset = _even_round(font_px / 2)
    label = name_label(name, font_px, tile.width - 2 * inset)
    if label is None or label.height + 2 * inset > tile.height:
        return None
    return label, Rect(tile.x + inset, tile.y + tile.height - inset - label.height, label.width, label.height)


@dataclass
class _Seat:
    """A participant as the compositor sees them."""

    name: str
    frame: av.VideoFrame | None = None
    dirty: bool = True
    drawn: Rect | None = None  # where the last picture went, to clear its bars when the picture's shape changes
    reformatter: VideoReformatter = field(default_factory=VideoReformatter)  # keeps its swscale context


class Compositor:
    """Composes the grid of a recording's participants into yuv420p frames of a fixed size.

    Not thread-safe: call it from one thread (the recorder's media thread). `compose()` costs one full-frame
    copy plus scaling (or cropping) and copying of the tiles that changed, and blending their name labels.
    """

    def __init__(self, width: int, height: int) -> None:
        if width % 2 or height % 2 or width < 2 or height < 2:
            raise ValueError(f"yuv420p needs an even size, not {width}x{height}")
        self.width = width
        self.height = height
        self._y = np.full((height, width), BACKGROUND_LUMA, np.uint8)
        self._u = np.full((height // 2, width // 2), NEUTRAL_CHROMA, np.uint8)
        self._v = np.full((height // 2, width // 2), NEUTRAL_CHROMA, np.uint8)
        self._seats: dict[str, _Seat] = {}  # insertion order is join order
        self._tiles: dict[str, Rect] = {}
        self._reflowed = False
        self._outline = outline_width(width, height)
        self._speaker: str | None = None
        self._outlined: Rect | None = None  # the tile the outline is drawn around

    def join(self, participant_id: str, name: str) -> None:
        """Add a participant at the end of the join order (a known one only gets the new name)."""
        seat = self._seats.get(participant_id)
        if seat is not None:
            if name != seat.name:  # the whole tile is redrawn: a shorter label must not leave the old one's edge
                seat.name, seat.dirty, seat.drawn = name, True, None
            return
        self._seats[participant_id] = _Seat(name)
        self._reflow()

    def leave(self, participant_id: str) -> None:
        """Remove a participant; the others re-flow in join order."""
        if self._seats.pop(participant_id, None) is not None:
            self._reflow()

    def update(self, participant_id: str, frame: av.VideoFrame) -> None:
        """Set the participant's latest video frame (any size and pixel format); raises KeyError if unknown."""
        seat = self._seats[participant_id]
        seat.frame, seat.dirty = frame, True

    def video_ended(self, participant_id: str) -> None:
        """The participant has no video any more: their tile shows their initials."""
        seat = self._seats.get(participant_id)
        if seat is not None and seat.frame is not None:
            seat.frame, seat.dirty = None, True

    def set_speaker(self, participant_id: str | None) -> None:
        """Outline this participant's tile from the next composition on (None, or someone unknown: nobody's)."""
        self._speaker = participant_id

    def tiles(self) -> dict[str, Rect]:
        """Each participant's tile, in join order."""
        return dict(self._tiles)

    @property
    def changed(self) -> bool:
        """Whether `compose()` would now give a picture other than the last one it gave."""
        speaker_tile = self._tiles.get(self._speaker) if self._speaker is not None else None
        return self._reflowed or speaker_tile != self._outlined or any(seat.dirty for seat in self._seats.values())

    def compose(self) -> av.VideoFrame:
        """A new yuv420p frame of the grid as it stands (no pts: the encoder places it)."""
        if self._reflowed:
            self._y[:] = BACKGROUND_LUMA
            self._u[:] = NEUTRAL_CHROMA
            self._v[:] = NEUTRAL_CHROMA
            self._outlined = None
            self._reflowed = False
        for participant_id, seat in self._seats.items():
            if seat.dirty:
                self._draw(seat, self._tiles[participant_id])
        self._draw_outline(self._tiles.get(self._speaker) if self._speaker is not None else None)
        # A fresh frame each time: encoders may keep a reference to frames they were given. Its planes are copied
        # by numpy, a quarter of the CPU of `VideoFrame.from_ndarray` (bench/README).
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for index, plane in enumerate((self._y, self._u, self._v)):
            plane_view(frame, index)[:] = plane
        return frame

    def _reflow(self) -> None:
        self._tiles = dict(zip(self._seats, grid(len(self._seats), self.width, self.height), strict=True))
        for seat in self._seats.values():
            seat.dirty, seat.drawn = True, None
        self._reflowed = True

    def _draw(self, seat: _Seat, tile: Rect) -> None:
        seat.dirty = False
        plate = name_plate(seat.name, tile)
        if seat.frame is None:
            self._fill(tile, TILE_LUMA)
            self._draw_initials(seat.name, tile)
            seat.drawn = None
        else:
            self._draw_picture(seat, seat.frame, tile, plate[1] if plate is not None else None)
        if plate is not None:
            label, where = plate
            label.blend((self._y, self._u, self._v), where.x, where.y)

    def _draw_picture(self, seat: _Seat, frame: av.VideoFrame, tile: Rect, label: Rect | None) -> None:
        target = content_rect(frame.width, frame.height, tile)
        if target != seat.drawn:
            self._fill(tile, TILE_LUMA)
            seat.drawn = target
        elif label is not None and target != tile:
            # The label was blended onto what is under it: where the picture does not cover that, start afresh.
            self._fill(label, TILE_LUMA)
        x, y, w, h = target.x, target.y, target.width, target.height
        if crops(frame.width, frame.height, tile) and frame.format.name == "yuv420p":
            left, top = _even_floor((frame.width - w) / 2), _even_floor((frame.height - h) / 2)
            planes = [plane_view(frame, index) for index in range(3)]
            self._y[y : y + h, x : x + w] = planes[0][top : top + h, left : left + w]
            chroma = (slice(top // 2, (top + h) // 2), slice(left // 2, (left + w) // 2))
            self._u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = planes[1][chroma]
            self._v[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = planes[2][chroma]
            return
        # threads=1: a swscale thread pool per tile costs more than it saves at tile sizes. AREA averages what it
        # shrinks (no aliasing) and enlarges like bilinear; shrinking 1280x720 into a 628x354 tile it takes 0.37 ms
        # where bilinear takes 0.50 (bilinear is as quick only at whole ratios like 2:1).
        scaled = seat.reformatter.reformat(frame, width=w, height=h, format="yuv420p", threads=1, interpolation="AREA")
        self._y[y : y + h, x : x + w] = plane_view(scaled, 0)
        self._u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = plane_view(scaled, 1)
        self._v[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = plane_view(scaled, 2)

    def _draw_initials(self, name: str, tile: Rect) -> None:
        diameter = _even_floor(min(tile.width, tile.height) * 0.45)
        if diameter < 8:
            return
        disc = initials_disc(name, diameter)
        x = tile.x + _even_floor((tile.width - diameter) / 2)
        y = tile.y + _even_floor((tile.height - diameter) / 2)
        disc.blend((self._y, self._u, self._v), x, y)

    def _draw_outline(self, tile: Rect | None) -> None:
        if tile == self._outlined:
            return
        if self._outlined is not None:
            self._ring(self._outlined, (BACKGROUND_LUMA, NEUTRAL_CHROMA, NEUTRAL_CHROMA))
        if tile is not None and self._outline:
            self._ring(tile, OUTLINE_YUV)
        self._outlined = tile

    def _ring(self, tile: Rect, colour: tuple[int, int, int]) -> None:
        """Paint the band `outline` pixels wide around a tile (it lies in the gap or margin)."""
        w = self._outline
        outer = Rect(tile.x - w, tile.y - w, tile.width + 2 * w, tile.height + 2 * w)
        for band in (
            Rect(outer.x, outer.y, outer.width, w),
            Rect(outer.x, tile.y + tile.height, outer.width, w),
            Rect(outer.x, tile.y, w, tile.height),
            Rect(tile.x + tile.width, tile.y, w, tile.height),
        ):
            self._fill(band, colour[0], colour[1:])

    def _fill(self, rect: Rect, luma: int, chroma: tuple[int, int] = (NEUTRAL_CHROMA, NEUTRAL_CHROMA)) -> None:
        x, y, w, h = rect.x, rect.y, rect.width, rect.height
        self._y[y : y + h, x : x + w] = luma
        self._u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = chroma[0]
        self._v[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = chroma[1]


def plane_view(frame: av.VideoFrame, index: int) -> np.ndarray:
    """A writable 2-D view of one 8-bit plane of a frame, without its row padding."""
    plane = frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def _even_floor(value: float) -> int:
    return int(value // 2) * 2


def _even_round(value: float) -> int:
    return round(value / 2) * 2
