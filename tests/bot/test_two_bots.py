"""Two bots in one meeting through a real recordkit: each receives the other's marks, on time and in sync."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import pytest

from recordkit.bot.marks import pair_marks
from recordkit.bot.run import run_bot
from tests.support.media import Setup, ThreadServer, serve_in_thread


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    with serve_in_thread(tmp_path_factory.mktemp("bots") / "data") as server:
        yield server


def marks_after(marks_unix_s: list[float], clock_start_unix_s: float, second: int) -> list[float]:
    """The marks made after whole second `second` of the sender's clock (each arrives within its own second)."""
    return [t for t in marks_unix_s if math.floor(t - clock_start_unix_s) > second]


@pytest.mark.parametrize("pre_encoded", [False, True], ids=["live", "pre-encoded"])
async def test_two_bots_receive_each_others_marks_in_sync(served: ThreadServer, pre_encoded: bool) -> None:
    setup = Setup(served.base_url)
    app_id, meeting_id = setup.meeting()
    ada, bob = (setup.participant(app_id, meeting_id, name) for name in ("Ada", "Bob"))
    setup.close()

    reports = await asyncio.gather(
        *(
            run_bot(
                served.base_url,
                who["token"],
                duration_s=5.3,
                name=who["name"],
                receive_audio=1,
                receive_video=1,
                pre_encoded=pre_encoded,
            )
            for who in (ada, bob)
        )
    )

    for report, sender in ((reports[0], reports[1]), (reports[1], reports[0])):
        video, audio = report.received_from(sender.name)
        assert video is not None and audio is not None, report
        assert video.frames > (45 if pre_encoded else 60) and audio.frames > 100  # a loop starts on a whole second
        # Every whole second the other bot lived through while both were in (its clock started before joining).
        assert len(video.marks_unix_s) >= 3 and len(audio.marks_unix_s) >= 3
        # Each mark in the second it was made, a little later (encoding, forwarding; measured here: 30–70 ms):
        # typically well under 150 ms, never near the next second. Not the first mark of each kind: it comes with
        # the receiver's first frames, timed by their arrival (no sender report yet) and held up by start-up
        # (the first keyframe, the subscriber's transport): 60–310 ms late here, and 548 ms once in a full suite
        # run, which `delays_ms` (within ±500 ms of a whole second) reads as 452 ms early.
        origin_s = sender.clock_start_unix_s
        delays_ms = sorted(video.delays_ms(origin_s)[1:] + audio.delays_ms(origin_s)[1:])
        assert delays_ms[0] >= 0 and delays_ms[-1] < 500, delays_ms
        assert delays_ms[len(delays_ms) // 2] < 150, delays_ms
        # The first marks each receiver gets come with its first frames (decoder start-up, first keyframe): on a
        # loaded machine the first was seen 130–335 ms late, and once (1 full suite run in 4, the live bots on a
        # slower machine) the second still 203 ms. Sync is judged on the marks after a receiver's first two seconds.
        first_second = min(math.floor(t - sender.clock_start_unix_s) for t in video.marks_unix_s + audio.marks_unix_s)
        sync = pair_marks(
            marks_after(video.marks_unix_s, sender.clock_start_unix_s, first_second + 1),
            marks_after(audio.marks_unix_s, sender.clock_start_unix_s, first_second + 1),
        )
        assert sync.pairs >= 2 and not sync.unpaired_flashes_s and not sync.unpaired_beeps_s, sync
        # Measured here: median −10 to −14 ms (video is held a frame longer than audio by aiortc's jitter buffer).
        assert sync.worst_ms is not None and abs(sync.worst_ms) < 40, sync
