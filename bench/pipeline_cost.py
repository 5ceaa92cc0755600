"""CPU cost of the recording pipeline's media stages, fed by generated frames (no network, no media plane).

What it measures, each as CPU time (all threads of this process) per second of media — the fraction of one
core a live recording spends on it:

* ``video``  compose a 1280x720 grid (``layout.Compositor``), blend a watermark, encode at 30 fps
  (``encoder.CompositeEncoder``: H.264 → fragmented MP4, VP8/VP9 → WebM), for 2 and 4 participants sending
  640x360 (tiles of 640x720 and 640x360: placed without scaling), and 2 sending 1280x720 (scaled down).
  Input frames are the bot's test pattern, rendered before timing starts (rendering them is the sender's
  cost, decoding them the media plane's).
* ``audio``  ``mixer.Mixer`` with 2 and 4 participants sending 20 ms 48 kHz stereo frames, and encoding the
  mix (AAC into the MP4, Opus into WebM).
* start  opening an encoder (header on disk), and the time from the first ``write_video`` to its first
  encoded packet in the file's muxer; then, paced in real time, when the first fragment reaches the disk.

It is a benchmark: it prints figures and the target next to them, and never asserts.

Run from the repository root::

    .venv/bin/python -m bench.pipeline_cost               # 10 s of media per row
    .venv/bin/python -m bench.pipeline_cost --seconds 30
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock, SyntheticVideoTrack
from recordkit.recorder.encoder import CompositeEncoder
from recordkit.recorder.layout import Compositor
from recordkit.recorder.mixer import Mixer
from recordkit.recorder.plan import AudioCodec, AudioPlan, CompositeFile, Container, Corner, VideoCodec, VideoPlan
from recordkit.recorder.plan import WatermarkSpec as Spec
from recordkit.recorder.watermark import Watermark

WIDTH, HEIGHT, FPS = 1280, 720, 30
CYCLE = 60  # distinct frames per participant, a flash among them
TARGET_CORES = 0.5  # issue 5: a whole 2-person 720p30 recording, media plane included


@dataclass
class VideoRow:
    label: str
    compose_cores: float
    encode_cores: float
    wall_per_frame_ms: float

    @property
    def cores(self) -> float:
        return self.compose_cores + self.encode_cores


def composite_plan(codec: VideoCodec) -> CompositeFile:
    h264 = codec is VideoCodec.H264
    return CompositeFile(
        "bench",
        Container.MP4 if h264 else Container.WEBM,
        VideoPlan(codec, WIDTH, HEIGHT, FPS, None),
        AudioPlan(AudioCodec.AAC if h264 else AudioCodec.OPUS, 2, 48_000),
    )


def logo() -> Watermark:
    """A 200x80 half-transparent PNG in the right bottom corner, as a customer's logo would be."""
    rgba = np.zeros((80, 200, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 160
    frame = av.VideoFrame.from_ndarray(rgba, format="rgba")
    packets = av.CodecContext.create("png", "w")
    packets.width, packets.height, packets.pix_fmt = 200, 80, "rgba"
    data = b"".join(bytes(p) for p in [*packets.encode(frame), *packets.encode(None)])
    return Watermark.from_image(data, Spec("data:,", None, None, Corner.RIGHT_BOTTOM), WIDTH, HEIGHT)


def video_cost(codec: VideoCodec, participants: int, size: tuple[int, int], seconds: float) -> VideoRow:
    clock = SyntheticClock()
    bots = [SyntheticVideoTrack(clock, *size, label=f"bot {n}") for n in range(participants)]
    cycles = [[bot.frame_at(index) for index in range(CYCLE)] for bot in bots]
    compositor = Compositor(WIDTH, HEIGHT)
    for n in range(participants):
        compositor.join(f"bot{n}", f"Bot {n}")
    watermark = logo()
    silence = np.zeros((2, 1600), np.int16)  # keeps the muxer interleaving as in a recording; cost not counted
    compose_s = encode_s = 0.0
    frames = round(seconds * FPS)
    with (
        tempfile.TemporaryDirectory() as tmp,
        CompositeEncoder.for_file(composite_plan(codec), Path(tmp) / "spool") as enc,
    ):
        wall_start = time.perf_counter()
        for index in range(frames):
            cpu_0 = time.process_time()
            for n in range(participants):
                compositor.update(f"bot{n}", cycles[n][index % CYCLE])
            frame = compositor.compose()
            watermark.apply(frame)
            cpu_1 = time.process_time()
            enc.write_video(frame, index / FPS, index / FPS)
            cpu_2 = time.process_time()
            enc.write_audio(silence, index / FPS)
            compose_s += cpu_1 - cpu_0
            encode_s += cpu_2 - cpu_1
        wall_s = time.perf_counter() - wall_start
    label = f"{codec.value} {participants} x {size[0]}x{size[1]}"
    return VideoRow(label, compose_s / seconds, encode_s / seconds, wall_s / frames * 1000)


def audio_cost(participants: int, seconds: float, codec: VideoCodec) -> tuple[float, float]:
    """(mixer cores, audio encoder cores) for `participants` stereo 48 kHz senders."""
    clock = SyntheticClock()
    tracks = [SyntheticAudioTrack(clock, channels=2) for _ in range(participants)]
    blocks = round(seconds / 0.02)
    frames = [[track.frame_at(index) for index in range(100)] for track in tracks]
    mixer = Mixer(2)
    mixed: list[np.ndarray] = []
    cpu_0 = time.process_time()
    for index in range(blocks):
        for n in range(participants):
            mixer.push(f"p{n}", frames[n][index % 100], index * 0.02)
        if index >= 2:  # 40 ms behind the newest input, like the recorder's jitter delay
            mixed.append(mixer.mix((index - 2) * 0.02, 960))
    mix_cores = (time.process_time() - cpu_0) / seconds
    plan = composite_plan(codec)
    with tempfile.TemporaryDirectory() as tmp, CompositeEncoder.for_file(plan, Path(tmp) / "spool") as encoder:
        cpu_1 = time.process_time()
        for index, block in enumerate(mixed):
            encoder.write_audio(block, index * 0.02)
        encode_cores = (time.process_time() - cpu_1) / seconds
    return mix_cores, encode_cores


def start_latency(codec: VideoCodec) -> tuple[float, float]:
    """(ms to open the encoder, ms from the first write_video to its first packet), median of 5."""
    bot = SyntheticVideoTrack(SyntheticClock(), WIDTH, HEIGHT)
    opens, firsts = [], []
    for _ in range(5):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            with CompositeEncoder.for_file(composite_plan(codec), Path(tmp) / "spool") as encoder:
                t1 = time.perf_counter()
                before_write = time.monotonic()
                encoder.write_video(bot.frame_at(0), 0.0, 0.0)
                first_packet_at_s = encoder.first_packet_at_s or float("nan")  # nan: held back by the encoder
                opens.append((t1 - t0) * 1000)
                firsts.append((first_packet_at_s - before_write) * 1000)
    return statistics.median(opens), statistics.median(firsts)


def first_fragment_on_disk_s(codec: VideoCodec) -> float:
    """Paced in real time: seconds from the first write_video until the file holds more than its header."""
    bot = SyntheticVideoTrack(SyntheticClock(), WIDTH, HEIGHT)
    frames = [bot.frame_at(index) for index in range(2 * FPS)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spool"
        with CompositeEncoder.for_file(composite_plan(codec), path) as encoder:
            header = path.stat().st_size
            start = time.monotonic()
            for index, frame in enumerate(frames):
                _sleep_until(start + index / FPS)
                encoder.write_video(frame, index / FPS, index / FPS)
                encoder.write_audio(np.zeros((2, 1600), np.int16), index / FPS)
                if path.stat().st_size > header:
                    return time.monotonic() - start
    return float("nan")


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _print_table(title: str, header: str, rows: list[str]) -> None:
    print(f"\n{title}\n{header}")
    for row in rows:
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of media per measurement")
    args = parser.parse_args()
    seconds: float = args.seconds

    video_rows: list[VideoRow] = []
    cases: list[tuple[VideoCodec, int, tuple[int, int]]] = [
        (VideoCodec.H264, 2, (640, 360)),
        (VideoCodec.H264, 4, (640, 360)),
        (VideoCodec.H264, 2, (1280, 720)),
        (VideoCodec.VP8, 2, (640, 360)),
        (VideoCodec.VP8, 4, (640, 360)),
        (VideoCodec.VP9, 2, (640, 360)),
    ]
    for codec, participants, size in cases:
        video_rows.append(video_cost(codec, participants, size, seconds))
    _print_table(
        f"Video: 1280x720 @ {FPS} fps, {seconds:g} s of media per row (cores = CPU seconds per media second)",
        f"{'case':<26}{'compose+wm':>12}{'encode':>10}{'total':>10}{'wall ms/frame':>15}",
        [
            f"{r.label:<26}{r.compose_cores:>12.3f}{r.encode_cores:>10.3f}{r.cores:>10.3f}{r.wall_per_frame_ms:>15.1f}"
            for r in video_rows
        ],
    )

    audio_rows: list[str] = []
    measure: list[tuple[int, VideoCodec, str]] = [(2, VideoCodec.H264, "AAC"), (4, VideoCodec.H264, "AAC")]
    measure.append((2, VideoCodec.VP8, "Opus"))
    for participants, codec, name in measure:
        mix_cores, encode_cores = audio_cost(participants, seconds, codec)
        case = f"{participants} participants, {name}"
        audio_rows.append(f"{case:<26}{mix_cores:>10.4f}{encode_cores:>10.4f}")
    _print_table("Audio: 48 kHz stereo, 20 ms blocks", f"{'case':<26}{'mixer':>10}{'encode':>10}", audio_rows)

    start_rows: list[str] = []
    for codec in VideoCodec:
        open_ms, first_ms = start_latency(codec)
        start_rows.append(f"{codec.value:<8}{open_ms:>14.1f}{first_ms:>24.1f}")
    _print_table(
        "Start (median of 5, 1280x720)", f"{'codec':<8}{'open ms':>14}{'first write → packet ms':>24}", start_rows
    )
    h264_s, vp8_s = first_fragment_on_disk_s(VideoCodec.H264), first_fragment_on_disk_s(VideoCodec.VP8)
    print(
        f"\nFirst fragment on disk, paced in real time: H264 {h264_s:.2f} s, VP8 {vp8_s:.2f} s after the first "
        "frame (fragments and clusters are 1 s; the header is on disk when the encoder opens)"
    )
    two = next(r for r in video_rows if r.label == "H264 2 x 640x360")
    audio_two = audio_cost(2, seconds, VideoCodec.H264)
    total = two.cores + sum(audio_two)
    print(
        f"\n2-person 720p30 H264 composite, pipeline stages only: {total:.3f} cores "
        f"(target for the whole recording, media plane included: <= {TARGET_CORES} core)"
    )


if __name__ == "__main__":
    main()
