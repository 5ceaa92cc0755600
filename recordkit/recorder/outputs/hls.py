"""The interactive recording (recordings.md §9.5): 10 s MPEG-TS segments (H.264 + AAC + timed ID3) and their
playlist while the recording runs, one `.tar` of them at the end.

Every segment starts at a video keyframe with an ID3v2.4 tag, a timed-metadata packet at that frame's time,
whose `TXXX` frame `wall_clock` holds the frame's wall-clock time in the meeting (ISO 8601 UTC, milliseconds);
the playlist's `#EXT-X-PROGRAM-DATE-TIME` says the same. The first frame after a pause gets a tag too: media
time skips the paused span, so from there on the wall clock is that much later than the segment's tag says.

Crash-safe like the spool: a segment is written as `segment_NNNNN.ts.part`, renamed when its muxer is closed,
and `index.m3u8` is then replaced whole. A kill -9 (which loses the process, not the page cache: no fsync
needed) leaves complete segments, a playlist listing them, and at most one `.part`, which nothing uses.
`package_hls` builds the tar's playlist from the segments themselves, not from `index.m3u8`: a kill between a
segment's rename and the playlist's rewrite leaves one complete segment the playlist does not list yet.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from fractions import Fraction
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.stream import Stream
from av.video.stream import VideoStream

from recordkit.clock import parse_iso8601
from recordkit.recorder.manifest import wall_time_iso

SEGMENT_S = 10.0
PLAYLIST = "index.m3u8"
SEGMENT_FILE = re.compile(r"^segment_(\d+)\.ts$")
# The ID3 `TXXX` description under which every tag carries the wall-clock time.
WALL_CLOCK = "wall_clock"
# Added to every timestamp in the segments: MPEG-TS cannot carry the AAC priming frame's negative time, and
# FFmpeg's own fix shifts only the first segment (each segment is a muxer of its own), which would leave a
# jump at the first cut. Any offset above the priming does; with 10 s, segment n starts at 10·(n + 1) s.
TS_OFFSET_S = 10
# A frame whose wall-clock time is further than this from what the last tag implies (a pause) gets a tag of its
# own; anything less is the rounding of media time to the 30 fps grid.
WALL_JUMP_S = 0.05


def hls_dir(spool: Path) -> Path:
    """Where an interactive recording's segments and playlist are written, inside its spool folder."""
    return spool / "hls"


def segment_name(index: int) -> str:
    return f"segment_{index:05d}.ts"


@dataclass(frozen=True)
class Segment:
    """A complete segment as the playlist lists it."""

    name: str
    duration_s: float
    wall_s: float


def playlist(segments: Sequence[Segment], ended: bool) -> str:
    """`index.m3u8` for `segments`: an EVENT playlist while the recording goes on, VOD once it `ended`."""
    target_s = max((math.ceil(segment.duration_s) for segment in segments), default=math.ceil(SEGMENT_S))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target_s}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{'VOD' if ended else 'EVENT'}",
    ]
    for segment in segments:
        lines += [
            f"#EXT-X-PROGRAM-DATE-TIME:{wall_time_iso(segment.wall_s)}",
            f"#EXTINF:{segment.duration_s:.3f},",
            segment.name,
        ]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def id3_tag(wall_s: float) -> bytes:
    """An ID3v2.4 tag holding one `TXXX` frame: `wall_clock` = `wall_s` as ISO 8601 UTC with milliseconds."""
    body = b"\x03" + WALL_CLOCK.encode() + b"\x00" + wall_time_iso(wall_s).encode()  # 3: UTF-8
    frame = b"TXXX" + _syncsafe(len(body)) + b"\x00\x00" + body
    return b"ID3\x04\x00\x00" + _syncsafe(len(frame)) + frame


def id3_wall_clock(tag: bytes) -> float | None:
    """The Unix time in an ID3v2.4 tag's `TXXX` `wall_clock` frame; None when the tag has no such frame."""
    if len(tag) < 10 or tag[:4] != b"ID3\x04":
        return None
    end = min(len(tag), 10 + _unsyncsafe(tag[6:10]))
    at = 10
    while at + 10 <= end:
        frame_id, size = tag[at : at + 4], _unsyncsafe(tag[at + 4 : at + 8])
        body = tag[at + 10 : at + 10 + size]
        if frame_id == b"TXXX" and body[:1] == b"\x03":
            description, _, value = body[1:].partition(b"\x00")
            if description == WALL_CLOCK.encode():
                return parse_iso8601(value.rstrip(b"\x00").decode()).replace(tzinfo=UTC).timestamp()
        at += 10 + size
    return None


def _syncsafe(size: int) -> bytes:
    """An ID3v2.4 size: 28 bits in four bytes of 7, so no byte of it looks like an MPEG sync word."""
    if not 0 <= size < 1 << 28:
        raise ValueError(f"an ID3 size must fit 28 bits, not {size}")
    return bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))


def _unsyncsafe(data: bytes) -> int:
    return (data[0] & 0x7F) << 21 | (data[1] & 0x7F) << 14 | (data[2] & 0x7F) << 7 | (data[3] & 0x7F)


class _SegmentFile:
    """One segment being written: its `.part` file, its muxer, and where its video starts and ends."""

    def __init__(self, directory: Path, index: int, video: VideoStream, audio: AudioStream) -> None:
        self.path = directory / segment_name(index)
        self.part = self.path.with_name(self.path.name + ".part")
        # Each segment's muxer counts its packets (continuity counters) from 0: without the discontinuity flag
        # on its first packets, a player reading the segments in a row takes the previous segment's last video
        # frame for corrupt.
        self.container: OutputContainer = av.open(
            str(self.part), "w", format="mpegts", options={"mpegts_flags": "initial_discontinuity"}
        )
        try:
            self.video: Stream = self.container.add_stream_from_template(video)
            self.audio: Stream = self.container.add_stream_from_template(audio)
            self.data = self.container.add_data_stream("timed_id3")
            self.container.start_encoding()
        except BaseException:
            self.container.close()
            raise
        self.start: Fraction | None = None  # media time of its first video frame
        self.end = Fraction(0)  # media time where its last video frame ends
        self.wall_s = 0.0
        self.wall_offset_s = 0.0  # wall-clock minus media time, as the last tag says

    def begin(self, packet: av.Packet, at: Fraction, wall_s: float) -> None:
        """Start with this keyframe."""
        self.start, self.wall_s = at, wall_s
        self.tag(packet, at, wall_s)

    def tag(self, packet: av.Packet, at: Fraction, wall_s: float) -> None:
        """An ID3 tag at this video packet's time, holding its wall-clock time."""
        self.wall_offset_s = wall_s - float(at)
        tag = av.Packet(id3_tag(wall_s))
        tag.pts = tag.dts = packet.pts
        tag.time_base = packet.time_base
        self.mux(tag, self.data)

    def mux(self, packet: av.Packet, stream: Stream) -> None:
        assert packet.time_base is not None
        offset = int(TS_OFFSET_S / packet.time_base)
        if packet.pts is not None:
            packet.pts += offset
        if packet.dts is not None:
            packet.dts += offset
        packet.stream = stream
        self.container.mux(packet)

    def finish(self, end: Fraction) -> Segment | None:
        """Close it and rename it into place; what the playlist lists, or None when it holds no video."""
        self.container.close()
        if self.start is None:
            self.part.unlink()
            return None
        os.replace(self.part, self.path)
        return Segment(self.path.name, float(end - self.start), self.wall_s)


class HlsOutput:
    """A recording output: the composite cut into segments of `segment_s` in `directory`, with their playlist.

    A segment ends at the first video keyframe at or after each multiple of `segment_s` of media time, so
    with a keyframe every second every segment but the last lasts `segment_s`. Video packets' `time_base` is
    one frame (1/fps), as the encoder gives them.
    """

    name = "hls"
    live = False
    keyframe_wanted = False

    def __init__(self, directory: Path, segment_s: float = SEGMENT_S) -> None:
        self.directory = directory
        self.segment_s = Fraction(segment_s)
        self.segments: list[Segment] = []
        self._current: _SegmentFile | None = None
        self._cut_at = Fraction(0)

    def open(self, video: VideoStream, audio: AudioStream) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._templates = (video, audio)
        self._current = _SegmentFile(self.directory, 0, video, audio)

    def write_video(self, packet: av.Packet, wall_s: float) -> None:
        current = self._current
        assert current is not None and packet.pts is not None and packet.time_base is not None
        at = packet.pts * packet.time_base
        if current.start is not None and packet.is_keyframe and at >= self._cut_at:
            self._current = None
            self._finished(current.finish(at))
            self._write_playlist(ended=False)
            current = self._current = _SegmentFile(self.directory, len(self.segments), *self._templates)
        if current.start is None:
            current.begin(packet, at, wall_s)
            self._cut_at = (at // self.segment_s + 1) * self.segment_s
        elif abs(wall_s - float(at) - current.wall_offset_s) > WALL_JUMP_S:
            current.tag(packet, at, wall_s)
        current.end = at + packet.time_base
        current.mux(packet, current.video)

    def write_audio(self, packet: av.Packet) -> None:
        assert self._current is not None
        self._current.mux(packet, self._current.audio)

    def close(self) -> None:
        """Finish the last segment and write the playlist as VOD; a segment that could not be closed is left
        as its `.part` and the error raised once the playlist lists the others."""
        current, self._current = self._current, None
        try:
            if current is not None:
                self._finished(current.finish(current.end))
        finally:
            if self.directory.is_dir():
                self._write_playlist(ended=True)

    def _finished(self, segment: Segment | None) -> None:
        if segment is not None:
            self.segments.append(segment)

    def _write_playlist(self, ended: bool) -> None:
        _replace_text(self.directory / PLAYLIST, playlist(self.segments, ended))


def _replace_text(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a reader, or a kill, never meets half of it."""
    temp = path.with_name(path.name + ".part")
    temp.write_text(text)
    os.replace(temp, path)


def package_hls(directory: Path, tar_path: Path) -> int | None:
    """Put the complete segments in `directory` and their VOD playlist into the tar `tar_path` (at its root:
    `index.m3u8`, then the segments in order), then delete `directory`; the tar's size.

    A directory left by a kill packages as well as a finished one: `.part` files are left out and the playlist
    is rebuilt from the segments. Called again once the directory is gone, it returns the tar's size; None
    when there is neither (the recording never started its segments).
    """
    if not directory.exists():
        return tar_path.stat().st_size if tar_path.exists() else None
    found = sorted((int(match[1]), path) for path in directory.iterdir() if (match := SEGMENT_FILE.match(path.name)))
    paths = [path for _, path in found]
    segments = _read_segments(paths)
    part = tar_path.with_name(tar_path.name + ".part")
    with tarfile.open(part, "w") as tar:
        text = playlist(segments, ended=True).encode()
        entry = tarfile.TarInfo(PLAYLIST)
        entry.size, entry.mtime, entry.mode = len(text), int(time.time()), 0o644
        tar.addfile(entry, io.BytesIO(text))
        for path in paths:
            tar.add(path, arcname=path.name)
    with part.open("rb") as file:
        # The segments are deleted next: the tar must be on the disk first, not only in the page cache.
        os.fsync(file.fileno())
    os.replace(part, tar_path)
    shutil.rmtree(directory)
    return tar_path.stat().st_size


def _read_segments(paths: Sequence[Path]) -> list[Segment]:
    """The playlist entries of consecutive segment files, from their ID3 tags and video timestamps: each lasts
    until the next one starts, the last until its last video frame ends."""
    starts = [_read_segment(path, to_the_end=False) for path in paths]
    ends = [start for start, _, _ in starts[1:]] + [_read_segment(path, to_the_end=True)[2] for path in paths[-1:]]
    return [
        Segment(path.name, float(end - start), wall_s)
        for path, (start, wall_s, _), end in zip(paths, starts, ends, strict=True)
    ]


def _read_segment(path: Path, to_the_end: bool) -> tuple[Fraction, float, Fraction]:
    """(start, wall-clock time, end of the video read): the start is the ID3 tag's time, which is its first
    video frame's; without `to_the_end`, reading stops at the tag."""
    start: Fraction | None = None
    wall_s: float | None = None
    end = Fraction(0)
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            at = packet.pts * packet.time_base
            if packet.stream.type == "data" and start is None:
                start, wall_s = at, id3_wall_clock(bytes(packet))
                if not to_the_end:
                    break
            elif packet.stream.type == "video":
                end = max(end, at + (packet.duration or 0) * packet.time_base)
    if start is None or wall_s is None:
        raise ValueError(f"{path.name} has no wall-clock ID3 tag")
    return start, wall_s, end
