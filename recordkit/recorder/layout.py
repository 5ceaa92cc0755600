"""The composite picture: an equal-tile grid of the participants in join order (recordings.md §9.3, "Layout").

Each tile shows its participant's latest video frame scaled with its aspect ratio kept (black bars around it),
or, for a participant without video, a dark tile with their name. The grid is a pure function of the number of
participants and the output size, so a participant keeps their tile while nobody joins or leaves; when someone
does, the grid re-flows and everyone takes their place in join order again.

`Compositor` keeps one yuv420p canvas for the whole recording and redraws only the tiles whose participant sent
a new frame since the last composition; scaling is swscale's, through one reformatter per participant, so its
context is set up once per input size instead of once per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from recordkit.bitmap_font import GLYPH_HEIGHT, GLYPH_WIDTH, printable, text_mask

# Cameras are 16:9 unless told otherwise: the grid's shape is chosen to give 16:9 pictures the most room.
ASSUMED_ASPECT = 16 / 9
# Limited-range YUV: black, a dark grey for name tiles, and a light grey for names (well below a flash's 255,
# so a sync detector never takes a name tile for a flash).
BLACK_LUMA = 16
NAME_TILE_LUMA = 40
NAME_TEXT_LUMA = 200
NEUTRAL_CHROMA = 128


@dataclass(frozen=True)
class Rect:
    """A rectangle of the output frame in pixels; every edge is on an even pixel so 4:2:0 chroma lines up."""

    x: int
    y: int
    width: int
    height: int


def grid(count: int, width: int, height: int) -> list[Rect]:
    """The tiles of `count` participants on a `width`×`height` frame, in join order (row by row).

    The column count is the one that shows a 16:9 picture biggest; ties go to fewer empty cells, then to the
    frame's long side (so two people sit side by side on a landscape frame and one above the other on a
    portrait one). That gives 1 → full frame, 2 → 2×1, 3–4 → 2×2, 5–6 → 3×2, 7–9 → 3×3, … 21–25 → 5×5 on a
    16:9 frame. Tiles are equal; the grid is centred, and so is an incomplete last row.
    """
    if count <= 0:
        return []
    best: tuple[float, int, int] | None = None
    columns = 0
    for cols in range(1, count + 1):
        rows = math.ceil(count / cols)
        tile_w, tile_h = _even_floor(width / cols), _even_floor(height / rows)
        if tile_w < 2 or tile_h < 2:
            continue
        fitted = fit(ASSUMED_ASPECT, 1.0, tile_w, tile_h)
        # Sorting key: bigger picture, fewer cells, then more columns when landscape (more rows when portrait).
        key = (fitted[0] * fitted[1], -cols * rows, cols if width >= height else -cols)
        if best is None or key > best:
            best, columns = key, cols
    if not columns:
        raise ValueError(f"{count} tiles do not fit on a {width}x{height} frame")
    rows = math.ceil(count / columns)
    tile_w, tile_h = _even_floor(width / columns), _even_floor(height / rows)
    top = _even_floor((height - rows * tile_h) / 2)
    tiles: list[Rect] = []
    for row in range(rows):
        in_row = min(columns, count - row * columns)
        left = _even_floor((width - in_row * tile_w) / 2)
        tiles += [Rect(left + col * tile_w, top + row * tile_h, tile_w, tile_h) for col in range(in_row)]
    return tiles


def fit(source_width: float, source_height: float, width: int, height: int) -> tuple[int, int]:
    """The largest even size with the source's aspect ratio that fits in `width`×`height` (at least 2×2)."""
    scale = min(width / source_width, height / source_height)
    return (
        max(2, min(_even_floor(width), _even_round(source_width * scale))),
        max(2, min(_even_floor(height), _even_round(source_height * scale))),
    )


def content_rect(source_width: int, source_height: int, tile: Rect) -> Rect:
    """Where a `source_width`×`source_height` picture lands in a tile: scaled to fit, centred."""
    w, h = fit(source_width, source_height, tile.width, tile.height)
    return Rect(tile.x + _even_floor((tile.width - w) / 2), tile.y + _even_floor((tile.height - h) / 2), w, h)


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
    copy plus scaling and copying of the tiles that changed.
    """

    def __init__(self, width: int, height: int) -> None:
        if width % 2 or height % 2 or width < 2 or height < 2:
            raise ValueError(f"yuv420p needs an even size, not {width}x{height}")
        self.width = width
        self.height = height
        luma_size = width * height
        # One buffer laid out as PyAV's yuv420p from_ndarray reads it (Y, U, V back to back), with plane views.
        self._canvas = np.full(luma_size * 3 // 2, NEUTRAL_CHROMA, np.uint8)
        self._y = self._canvas[:luma_size].reshape(height, width)
        self._u = self._canvas[luma_size : luma_size * 5 // 4].reshape(height // 2, width // 2)
        self._v = self._canvas[luma_size * 5 // 4 :].reshape(height // 2, width // 2)
        self._y[:] = BLACK_LUMA
        self._seats: dict[str, _Seat] = {}  # insertion order is join order
        self._tiles: dict[str, Rect] = {}
        self._reflowed = False

    def join(self, participant_id: str, name: str) -> None:
        """Add a participant at the end of the join order (a known one only gets the new name)."""
        seat = self._seats.get(participant_id)
        if seat is not None:
            seat.name, seat.dirty = name, seat.dirty or seat.frame is None
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
        """The participant has no video any more: their tile shows their name."""
        seat = self._seats.get(participant_id)
        if seat is not None and seat.frame is not None:
            seat.frame, seat.dirty = None, True

    def tiles(self) -> dict[str, Rect]:
        """Each participant's tile, in join order."""
        return dict(self._tiles)

    def compose(self) -> av.VideoFrame:
        """A new yuv420p frame of the grid as it stands (no pts: the encoder places it)."""
        if self._reflowed:
            self._y[:] = BLACK_LUMA
            self._u[:] = NEUTRAL_CHROMA
            self._v[:] = NEUTRAL_CHROMA
            self._reflowed = False
        for participant_id, seat in self._seats.items():
            if seat.dirty:
                self._draw(seat, self._tiles[participant_id])
        # A fresh frame each time: encoders may keep a reference to frames they were given.
        return av.VideoFrame.from_ndarray(self._canvas.reshape(-1, self.width), format="yuv420p")

    def _reflow(self) -> None:
        self._tiles = dict(zip(self._seats, grid(len(self._seats), self.width, self.height), strict=True))
        for seat in self._seats.values():
            seat.dirty, seat.drawn = True, None
        self._reflowed = True

    def _draw(self, seat: _Seat, tile: Rect) -> None:
        seat.dirty = False
        if seat.frame is None:
            self._draw_name(seat.name, tile)
            seat.drawn = None
            return
        target = content_rect(seat.frame.width, seat.frame.height, tile)
        if target != seat.drawn:
            self._fill(tile, BLACK_LUMA)
            seat.drawn = target
        # threads=1: a swscale thread pool per tile costs more than it saves at tile sizes.
        scaled = seat.reformatter.reformat(
            seat.frame, width=target.width, height=target.height, format="yuv420p", threads=1
        )
        x, y, w, h = target.x, target.y, target.width, target.height
        self._y[y : y + h, x : x + w] = plane_view(scaled, 0)
        self._u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = plane_view(scaled, 1)
        self._v[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = plane_view(scaled, 2)

    def _fill(self, tile: Rect, luma: int) -> None:
        x, y, w, h = tile.x, tile.y, tile.width, tile.height
        self._y[y : y + h, x : x + w] = luma
        self._u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = NEUTRAL_CHROMA
        self._v[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = NEUTRAL_CHROMA

    def _draw_name(self, name: str, tile: Rect) -> None:
        self._fill(tile, NAME_TILE_LUMA)
        mask = name_mask(name, tile.width * 4 // 5, tile.height // 4)
        h, w = mask.shape
        if w == 0:
            return
        top = tile.y + (tile.height - h) // 2
        left = tile.x + (tile.width - w) // 2
        self._y[top : top + h, left : left + w][mask] = NAME_TEXT_LUMA


def name_mask(name: str, max_width: int, max_height: int) -> np.ndarray:
    """A participant's name as a boolean pixel mask at most `max_width`×`max_height`, in the biggest whole
    scale of the 5×7 font that fits; a name too long even at scale 1 is cut and ends in "..".

    Names are shown in capitals, accents dropped; other characters show as "?". Empty names show "?".
    """
    text = printable(name) or "?"
    cell = GLYPH_WIDTH + 1  # one blank font column between characters
    scale = max(1, min((max_width + 1) // (cell * len(text)), max_height // GLYPH_HEIGHT))
    fits = (max_width + scale) // (cell * scale)
    if fits < 1 or GLYPH_HEIGHT * scale > max_height:
        return np.zeros((0, 0), bool)
    if len(text) > fits:
        text = text[: max(0, fits - 2)] + ".." if fits >= 3 else text[:fits]
    return text_mask(text, scale)


def plane_view(frame: av.VideoFrame, index: int) -> np.ndarray:
    """A writable 2-D view of one 8-bit plane of a frame, without its row padding."""
    plane = frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def _even_floor(value: float) -> int:
    return int(value // 2) * 2


def _even_round(value: float) -> int:
    return round(value / 2) * 2
