"""x264 settings for the composite by measured cost and picture: CPU per frame, bit rate and Y-PSNR (issue 15).

Four 20 s contents of a 2-participant 1280x720 30 fps composite, made by the real ``layout.Compositor`` from two
640x360 pictures side by side with their name plates, are kept uncompressed as the reference:

* ``meeting``  both bots' test pattern as the bots send it (``SyntheticVideoTrack``): every pixel of both
  pictures moves every frame and each flashes white once a second. The worst case for an encoder.
* ``talking heads``  closer to cameras in a meeting: each picture is one frame of the bot's pattern held
  still, but for a head-sized window in its middle (a third of its width, from a quarter of its height down) whose
  content sways sideways, up to 8 px each way over 4 s, like a person in front of a still background. No flash.
* ``meeting as received``, ``talking heads as received``  the same pictures as a recorder gets them: each
  bot's through VP8 at the bots' bit rate and decoded (``--contents`` picks some).

Each candidate encodes the same frames through the real ``CompositeEncoder`` into an MP4 spool file: the bench
only replaces the H.264 options ``_add_video_stream`` sets (preset, crf, x264-params, threads) and the keyframe
interval (``KEYFRAME_S``), so the cap,
profile, tune, colour tags and muxing are those that ship, and the row ``shipped`` has nothing replaced. For
each it prints the CPU time of this process (all threads) in ``write_video`` and the final drain, per frame,
median of ``--passes`` passes with the candidates interleaved pass by pass (so load on the machine falls on all
of them alike); the bit rate of the file's video stream (its packets' bytes over the duration); and the Y-PSNR
of the decoded file against the reference, mean over frames. The baseline is the settings before issue 15
(``today``); the quality rule is a Y-PSNR at most 0.3 dB lower than its, at a bit rate no higher.

It is a benchmark: it prints, and never asserts. Run from the repository root (about 8 minutes)::

    flock /tmp/rk-bench.lock .venv/bin/python -m bench.encoder_quality
    flock /tmp/rk-bench.lock .venv/bin/python -m bench.encoder_quality --seconds 10 --passes 1
    flock /tmp/rk-bench.lock .venv/bin/python -m bench.encoder_quality --only "me=dia crf 23.1" --passes 9
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import av
import numpy as np
from av.container import OutputContainer
from av.video.stream import VideoStream

from recordkit.bot.synthetic import VP8_BITRATE, SyntheticClock, SyntheticVideoTrack, encode_vp8
from recordkit.recorder import encoder
from recordkit.recorder.encoder import CompositeEncoder
from recordkit.recorder.layout import Compositor, plane_view
from recordkit.recorder.plan import AudioCodec, AudioPlan, CompositeFile, Container, VideoCodec, VideoPlan

WIDTH, HEIGHT, FPS = 1280, 720, 30
CAMERA = (640, 360)
NAMES = ("Alice Martin", "Bob Chen")
PLAN = CompositeFile(
    "bench", Container.MP4, VideoPlan(VideoCodec.H264, WIDTH, HEIGHT, FPS, None), AudioPlan(AudioCodec.AAC, 2, 48_000)
)
MAX_PSNR_LOSS_DB = 0.3  # issue 15: the quality rule, at a bit rate no higher than today's
SWAY_PX, SWAY_PERIOD_S = 8, 4.0


@dataclass(frozen=True)
class Candidate:
    """H.264 options in place of the shipped ones; `params` follow the keyframe settings in x264-params."""

    name: str
    preset: str = "veryfast"
    crf: str = "23"
    params: str = "partitions=i8x8,i4x4"
    threads: int = 1
    keyframe_s: int = 1  # seconds between keyframes (`encoder.KEYFRAME_S`)


SHIPPED = "partitions=i8x8,i4x4:me=dia"  # with crf 23.1
TODAY = Candidate("today")  # what shipped before issue 15: the baseline of the quality rule
# veryfast under zerolatency already has ref=1, no mixed-refs, trellis=0 and fast-pskip: not candidates. Preset
# superfast is veryfast with subme=1 and me=dia (and no lookahead or mb-tree, which zerolatency turns off anyway).
CANDIDATES = [
    TODAY,
    Candidate("today, 2 threads", threads=2),
    Candidate("ultrafast", preset="ultrafast", params=""),
    Candidate("superfast", preset="superfast"),
    Candidate("superfast crf 22", preset="superfast", crf="22"),
    Candidate("subme=1", params="partitions=i8x8,i4x4:subme=1"),
    Candidate("me=dia", params="partitions=i8x8,i4x4:me=dia"),
    Candidate("me=dia crf 23.1", crf="23.1", params="partitions=i8x8,i4x4:me=dia"),
    Candidate("me=dia crf 23.1, 2 threads", crf="23.1", params="partitions=i8x8,i4x4:me=dia", threads=2),
    Candidate("weightp=0", params="partitions=i8x8,i4x4:weightp=0"),
    Candidate("aq-mode=0", params="partitions=i8x8,i4x4:aq-mode=0"),
    Candidate("8x8dct=0", params="partitions=i4x4:8x8dct=0"),
    Candidate("partitions=i8x8", params="partitions=i8x8"),
    Candidate("cabac=0", params="partitions=i8x8,i4x4:cabac=0"),
    Candidate("shipped, no-deblock", crf="23.1", params="partitions=i8x8,i4x4:me=dia:no-deblock=1"),
    Candidate("subme=1 aq-mode=0 crf 27", crf="27", params="partitions=i8x8,i4x4:me=dia:subme=1:aq-mode=0"),
    # zerolatency turned B-frames, the lookahead and mb-tree off; x264-params come after the tune and bring them back.
    Candidate("mb-tree", crf="23.1", params=f"{SHIPPED}:rc-lookahead=10:mbtree=1"),
    Candidate("b-frames", crf="23.1", params=f"{SHIPPED}:bframes=3:rc-lookahead=10:mbtree=1"),
    Candidate("b-frames subme=1", crf="23.1", params=f"{SHIPPED}:bframes=3:rc-lookahead=10:mbtree=1:subme=1"),
    Candidate("2 b-frames, lookahead 5", crf="23.1", params=f"{SHIPPED}:bframes=2:rc-lookahead=5:mbtree=1"),
    Candidate("2 fixed b-frames", crf="23.1", params=f"{SHIPPED}:bframes=2:b-adapt=0"),
    Candidate("2 fixed b-frames subme=1 crf 22", crf="22", params=f"{SHIPPED}:bframes=2:b-adapt=0:subme=1"),
    Candidate("2 fixed b-frames crf 22", crf="22", params=f"{SHIPPED}:bframes=2:b-adapt=0"),
    # A keyframe every 2 s instead of every second: fewer of the costliest frames, bits to spend elsewhere.
    Candidate("keyframes 2 s", crf="23.1", params=SHIPPED, keyframe_s=2),
    Candidate("keyframes 2 s crf 22.5", crf="22.5", params=SHIPPED, keyframe_s=2),
    Candidate("keyframes 2 s superfast crf 22", preset="superfast", crf="22", keyframe_s=2),
    Candidate("keyframes 2 s subme=1 crf 22", crf="22", params=f"{SHIPPED}:subme=1", keyframe_s=2),
    Candidate("keyframes 2 s subme=1 crf 21.5", crf="21.5", params=f"{SHIPPED}:subme=1", keyframe_s=2),
    Candidate("keyframes 3 s subme=1 crf 21.5", crf="21.5", params=f"{SHIPPED}:subme=1", keyframe_s=3),
    Candidate("subme=1 crf 23.5", crf="23.5", params=f"{SHIPPED}:subme=1"),
    Candidate("subme=1 crf 24", crf="24", params=f"{SHIPPED}:subme=1"),
    Candidate("subme=1 crf 24.5", crf="24.5", params=f"{SHIPPED}:subme=1"),
    Candidate("subme=0 crf 24", crf="24", params=f"{SHIPPED}:subme=0"),
]


@dataclass
class Row:
    name: str
    cpu_ms: list[float]  # per frame, one figure per pass
    kbps: float
    psnr_db: float

    @property
    def ms(self) -> float:
        return statistics.median(self.cpu_ms)


def meeting_pictures(seconds: float) -> Iterator[list[av.VideoFrame]]:
    """Both bots' moving pattern, frame by frame."""
    clock = SyntheticClock()
    bots = [SyntheticVideoTrack(clock, *CAMERA, label=name) for name in NAMES]
    for index in range(round(seconds * FPS)):
        yield [bot.frame_at(index) for bot in bots]


def talking_pictures(seconds: float) -> Iterator[list[av.VideoFrame]]:
    """Each bot's pattern held still but for a swaying head-sized window (see the module's docstring)."""
    clock = SyntheticClock()
    stills = [SyntheticVideoTrack(clock, *CAMERA, label=name).frame_at(0) for name in NAMES]
    planes = [[plane_view(still, p).copy() for p in range(3)] for still in stills]
    width, height = CAMERA
    left, right, top = width // 6 * 2, width // 3 * 2, height // 4 // 2 * 2  # even: 4:2:0
    for index in range(round(seconds * FPS)):
        shift = 2 * round(SWAY_PX / 2 * math.sin(2 * math.pi * index / (SWAY_PERIOD_S * FPS)))  # even: 4:2:0
        pictures = []
        for y, u, v in planes:
            frame = av.VideoFrame(width, height, "yuv420p")
            for p, (plane, scale) in enumerate(((y, 1), (u, 2), (v, 2))):
                out = plane_view(frame, p)
                out[:] = plane
                x0, x1, dx = left // scale, right // scale, shift // scale
                out[top // scale :, x0:x1] = plane[top // scale :, x0 - dx : x1 - dx]
            pictures.append(frame)
        yield pictures


def as_received(pictures: Iterator[list[av.VideoFrame]]) -> Iterator[list[av.VideoFrame]]:
    """The same pictures as a recorder gets them: each bot's through VP8 at the bots' bit rate, decoded."""
    decoded = []
    for frames in zip(*pictures, strict=True):
        decoder = av.CodecContext.create("vp8", "r")
        payloads = encode_vp8(list(frames), VP8_BITRATE, FPS)
        decoded.append([frame for payload in payloads for frame in decoder.decode(av.Packet(payload))])
    for frames in zip(*decoded, strict=True):
        yield list(frames)


def composite(pictures: Iterator[list[av.VideoFrame]]) -> list[np.ndarray]:
    """The composite of each frame's pictures, yuv420p planes as `av.VideoFrame.from_ndarray` takes them."""
    compositor = Compositor(WIDTH, HEIGHT)
    for name in NAMES:
        compositor.join(name, name)
    frames = []
    for frame in pictures:
        for name, picture in zip(NAMES, frame, strict=True):
            compositor.update(name, picture)
        frames.append(compositor.compose().to_ndarray())
    return frames


def _with_options(candidate: Candidate) -> Callable[[OutputContainer, VideoPlan], VideoStream]:
    shipped = encoder._add_video_stream

    def add_video_stream(container: OutputContainer, plan: VideoPlan) -> VideoStream:
        stream = shipped(container, plan)
        gop = encoder._frames_per_keyframe(plan)  # `encode` patches KEYFRAME_S to the candidate's
        keyframes = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        stream.codec_context.options = {
            **stream.codec_context.options,
            "preset": candidate.preset,
            "crf": candidate.crf,
            "x264-params": f"{keyframes}:{candidate.params}" if candidate.params else keyframes,
        }
        stream.codec_context.thread_count = candidate.threads
        return stream

    return add_video_stream


def encode(frames: list[np.ndarray], candidate: Candidate | None, path: Path) -> float:
    """Encode `frames` to the spool file at `path` (shipped options when `candidate` is None); CPU ms per frame."""
    # The options are replaced where CompositeEncoder sets them, so everything else is what ships.
    silence = np.zeros((2, 48_000 // FPS), np.int16)  # the muxer interleaves as in a recording; cost not counted
    cpu_s = 0.0
    with contextlib.ExitStack() as patches:
        if candidate:
            patches.enter_context(mock.patch.object(encoder, "_add_video_stream", _with_options(candidate)))
            patches.enter_context(mock.patch.object(encoder, "KEYFRAME_S", candidate.keyframe_s))
        with CompositeEncoder.for_file(PLAN, path) as enc:
            for index, planes in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
                start = time.process_time()
                enc.write_video(frame, index / FPS, index / FPS)
                cpu_s += time.process_time() - start
                enc.write_audio(silence, index / FPS)
            start = time.process_time()
            enc.close()
            cpu_s += time.process_time() - start
    return cpu_s / len(frames) * 1000


def bitrate_kbps(path: Path, frames: int) -> float:
    with av.open(str(path)) as container:
        size = sum(packet.size for packet in container.demux(video=0))
    return size * 8 / (frames / FPS) / 1000


def y_psnr_db(path: Path, reference: list[np.ndarray]) -> float:
    """Mean over frames of the decoded Y plane's PSNR against the reference's (a missing frame counts as 0 dB)."""
    psnr = [0.0] * len(reference)
    with av.open(str(path)) as container:
        # In decoding order, which is the frames' own without B-frames (the file's timestamps are not all on
        # the 1/30 s grid: the muxer moves them by the AAC priming once the audio starts).
        for index, frame in enumerate(container.decode(video=0)):
            diff = plane_view(frame, 0).astype(np.int16) - reference[index][:HEIGHT]
            mse = float(np.mean(np.square(diff, dtype=np.int32)))
            psnr[index] = 10 * math.log10(255**2 / mse) if mse else 99.0
    return statistics.fmean(psnr)


def measure(frames: list[np.ndarray], candidates: list[Candidate | None], passes: int) -> list[Row]:
    cpu_ms: list[list[float]] = [[] for _ in candidates]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(passes):
            for slot, candidate in enumerate(candidates):
                path = Path(tmp) / f"{slot}.mp4"
                cpu_ms[slot].append(encode(frames, candidate, path))
                if number == 0:  # the files of later passes are the same bytes
                    name = candidate.name if candidate else "shipped"
                    rows.append(Row(name, cpu_ms[slot], bitrate_kbps(path, len(frames)), y_psnr_db(path, frames)))
    return rows


def print_table(title: str, rows: list[Row]) -> None:
    today = next(row for row in rows if row.name == TODAY.name)
    print(f"\n{title}")
    print(
        f"{'candidate':<30}{'CPU ms/frame':>13}{'spread':>8}{'Δ ms':>7}{'cores':>7}"
        f"{'kb/s':>7}{'Δ bits':>8}{'Y-PSNR':>8}{'Δ dB':>7}  rule"
    )
    for row in sorted(rows, key=lambda row: row.ms):
        bits = row.kbps / today.kbps - 1
        loss = row.psnr_db - today.psnr_db
        rule = "ok" if row.kbps <= today.kbps and loss >= -MAX_PSNR_LOSS_DB else "fails"
        print(
            f"{row.name:<30}{row.ms:>13.2f}{max(row.cpu_ms) - min(row.cpu_ms):>8.2f}{row.ms - today.ms:>+7.2f}"
            f"{row.ms * FPS / 1000:>7.3f}{row.kbps:>7.0f}{bits:>+8.1%}{row.psnr_db:>8.2f}{loss:>+7.2f}  {rule}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of composite per content")
    parser.add_argument("--passes", type=int, default=3, help="encodes per candidate; CPU is their median")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these candidates alone (and today and shipped)")
    parser.add_argument("--contents", nargs="+", metavar="NAME", help="these contents alone")
    args = parser.parse_args()
    chosen = [c for c in CANDIDATES if c is TODAY or args.only is None or c.name in args.only]
    candidates: list[Candidate | None] = [None, *chosen]
    contents = {
        "meeting": lambda: meeting_pictures(args.seconds),
        "talking heads": lambda: talking_pictures(args.seconds),
        "meeting as received": lambda: as_received(meeting_pictures(args.seconds)),
        "talking heads as received": lambda: as_received(talking_pictures(args.seconds)),
    }
    for content, pictures in contents.items():
        if args.contents and content not in args.contents:
            continue
        frames = composite(pictures())
        rows = measure(frames, candidates, args.passes)
        print_table(
            f"{content}: {WIDTH}x{HEIGHT} {FPS} fps, {args.seconds:g} s, 2 tiles of {CAMERA[0]}x{CAMERA[1]}; "
            f"CPU median of {args.passes} (spread = max − min); rule: ≥ −{MAX_PSNR_LOSS_DB} dB at ≤ today's bits",
            rows,
        )


if __name__ == "__main__":
    main()
