"""What each output of a composite costs on top of its one encode (issue 13, acceptance 4), measured in-process.

The same 10 s of a 2-person 720p30 composite (the bots' moving pattern through the real `Compositor`, and
their tone mixed to stereo) is encoded by `CompositeEncoder` with each set of outputs: the spool file alone,
the spool file and an RTMP stream to a real nginx-rtmp on 127.0.0.1 (`tests/support/rtmp_server.py`), and an
interactive recording's HLS segments alone. CPU is this process's (every thread: the encoder's, the RTMP
output's) from `time.process_time()`, per second of media — the cores a live recording spends — median of
`--passes` passes, the output sets taking turns in each pass so the machine's drift falls on all alike.
nginx's own CPU is not counted: it is the RTMP server's, not recordkit's. It prints, never asserts.

    .venv/bin/python -m bench.output_cost [--seconds 10] [--passes 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402

from bench.pipeline_cost import composite_plan  # noqa: E402
from recordkit.bot.synthetic import SyntheticAudioTrack, SyntheticClock, SyntheticVideoTrack  # noqa: E402
from recordkit.recorder.encoder import CompositeEncoder  # noqa: E402
from recordkit.recorder.layout import Compositor  # noqa: E402
from recordkit.recorder.outputs import Output  # noqa: E402
from recordkit.recorder.outputs.file import FileOutput  # noqa: E402
from recordkit.recorder.outputs.hls import HlsOutput  # noqa: E402
from recordkit.recorder.outputs.rtmp import RtmpOutput  # noqa: E402
from recordkit.recorder.plan import VideoCodec  # noqa: E402
from tests.support.rtmp_server import rtmp_server  # noqa: E402

FPS = 30
TARGET_CORES = 0.03


def media(seconds: float) -> tuple[list[av.VideoFrame], list[np.ndarray]]:
    """The composite frames and the 1/30 s stereo blocks of `seconds` of a 2-person meeting."""
    clock = SyntheticClock()
    bots = [SyntheticVideoTrack(clock, 640, 360, label=f"Bot {n}") for n in range(2)]
    compositor = Compositor(1280, 720)
    for n in range(2):
        compositor.join(f"bot{n}", f"Bot {n}")
    frames = []
    for index in range(round(seconds * FPS)):
        for n, bot in enumerate(bots):
            compositor.update(f"bot{n}", bot.frame_at(index))
        frames.append(compositor.compose())
    tone = SyntheticAudioTrack(clock, channels=2)
    blocks_20ms = [tone.frame_at(block).to_ndarray().reshape(-1, 2).T for block in range(round(seconds * 50))]
    samples = np.concatenate(blocks_20ms, axis=1)
    blocks = [np.ascontiguousarray(samples[:, i * 1600 : (i + 1) * 1600]) for i in range(len(frames))]
    return frames, blocks


def encode(outputs: list[Output], frames: list[av.VideoFrame], blocks: list[np.ndarray]) -> float:
    """CPU seconds (all threads) to encode and mux everything through `outputs`, closing included."""
    started = time.process_time()
    with CompositeEncoder(composite_plan(VideoCodec.H264), outputs) as encoder:
        for index, (frame, block) in enumerate(zip(frames, blocks, strict=True)):
            at_s = index / FPS
            encoder.write_video(frame, at_s, 1_800_000_000 + at_s)
            encoder.write_audio(block, at_s)
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="media per pass (the RTMP queue holds ~10 s)")
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args(argv)
    frames, blocks = media(args.seconds)
    with rtmp_server() as rtmp, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sets: dict[str, Callable[[int], list[Output]]] = {
            "file only": lambda n: [FileOutput(composite_plan(VideoCodec.H264).container, work / f"f{n}.mp4")],
            "file + RTMP": lambda n: [
                FileOutput(composite_plan(VideoCodec.H264).container, work / f"r{n}.mp4"),
                RtmpOutput(rtmp.url(f"bench{n}")),
            ],
            "interactive (HLS)": lambda n: [HlsOutput(work / f"hls{n}")],
        }
        cores: dict[str, list[float]] = {name: [] for name in sets}
        for n in range(args.passes):
            for name, make in sets.items():
                cores[name].append(encode(make(n), frames, blocks) / args.seconds)
        published = [path.stat().st_size for path in rtmp.flv_files()]
    base = statistics.median(cores["file only"])
    print(f"\nOutputs of one 2-person 720p30 H.264 composite ({args.seconds:g} s of media, {args.passes} passes)")
    header = f"{'outputs':<20}{'cores (median)':>16}{'min':>8}{'max':>8}{'added':>9}  target"
    print(header)
    print("-" * len(header))
    for name, values in cores.items():
        added = statistics.median(values) - base
        target = "-" if name == "file only" else f"≤ {TARGET_CORES} {'met' if added <= TARGET_CORES else 'MISSED'}"
        figures = f"{statistics.median(values):>16.3f}{min(values):>8.3f}{max(values):>8.3f}{added:>+9.3f}"
        print(f"{name:<20}{figures}  {target}")
    print(f"   (nginx received {len(published)} streams, {min(published, default=0) // 1024} KiB or more each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
