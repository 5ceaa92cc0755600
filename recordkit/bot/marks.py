"""Finding the bot's sync marks again: white flash frames in video, 1 kHz beep onsets in audio, and their pairing.

The detectors work on what comes out of any decoder: video frames of any size and pixel format (optionally only
a region of them, for a tile of a recorded grid) and audio frames or plain sample arrays at any rate. Times are
in seconds, from `pts · time_base` unless the caller passes its own (for instance the wall-clock arrival of the
frame). Both detectors can be fed incrementally (`push`) for live streams, or called once on a whole recording
(`detect_flashes`, `detect_beeps`).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from recordkit.bot.synthetic import BEEP_FREQUENCY_HZ

# Mean 8-bit luma above which a frame is a flash. The synthetic pattern never exceeds 176 anywhere; a full-white
# frame decodes to ≈ 255 (full range) or ≈ 235 (limited range after an RGB round trip).
FLASH_LUMA_THRESHOLD = 200.0
# Beep amplitude (fraction of full scale) that counts as "on": the bot beeps at 0.5, so this leaves room for a
# mixer that scales each of many participants down, while staying far above codec noise.
BEEP_THRESHOLD = 0.02
# A beep must stay on this long; shorter bursts (clicks, codec artefacts) are ignored. The bot's beeps last 100 ms.
BEEP_MIN_DURATION_S = 0.05
# Marks are one second apart, so anything further than half of that cannot be the same mark.
MAX_PAIR_DISTANCE_S = 0.5
# The beep detector's band: 10 ms of signal, i.e. nulls every 100 Hz around the pitch it listens for.
DETECTION_WINDOW_S = 0.010

_MEAN_LUMA_PIXELS = 20_000
# Pixel formats whose first plane is 8-bit luma: read it directly instead of converting the frame.
_LUMA_PLANE_FORMATS = frozenset(
    {
        "gray",
        "nv12",
        "nv21",
        "yuv410p",
        "yuv411p",
        "yuv420p",
        "yuv422p",
        "yuv440p",
        "yuv444p",
        "yuvj420p",
        "yuvj422p",
        "yuvj440p",
        "yuvj444p",
    }
)


@dataclass(frozen=True)
class Region:
    """A rectangle of a frame in fractions of its width and height, so it survives scaling of the frame."""

    x: float
    y: float
    width: float
    height: float

    def __post_init__(self) -> None:
        if not (0 <= self.x < 1 and 0 <= self.y < 1 and self.width > 0 and self.height > 0):
            raise ValueError(f"not a region of a frame: {self}")
        if self.x + self.width > 1 + 1e-9 or self.y + self.height > 1 + 1e-9:
            raise ValueError(f"region leaves the frame: {self}")

    @classmethod
    def from_pixels(cls, x: int, y: int, width: int, height: int, frame_width: int, frame_height: int) -> Region:
        """The region of a pixel rectangle in a frame of the given size (e.g. one tile of a recorded grid)."""
        return cls(x / frame_width, y / frame_height, width / frame_width, height / frame_height)

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The part of a 2-D image inside the region (at least one pixel)."""
        rows, cols = image.shape[:2]
        top, left = math.floor(self.y * rows), math.floor(self.x * cols)
        bottom = max(top + 1, math.ceil((self.y + self.height) * rows))
        right = max(left + 1, math.ceil((self.x + self.width) * cols))
        return image[top:bottom, left:right]


def luma(frame: av.VideoFrame) -> np.ndarray:
    """The frame's 8-bit luma as a 2-D array (a view of the frame's memory for planar YUV and gray)."""
    if frame.format.name in _LUMA_PLANE_FORMATS:
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        return rows[:, : plane.width]
    return frame.to_ndarray(format="gray")


def mean_luma(frame: av.VideoFrame, region: Region | None = None) -> float:
    """Mean 8-bit luma of the frame, or of a region of it.

    Measured on a grid of at most ≈ 20,000 pixels: plenty to tell a white frame from a test pattern, and it keeps
    watching many live streams cheap (≈ 10 µs instead of ≈ 200 µs for a 640×360 frame).
    """
    image = luma(frame)
    if region is not None:
        image = region.crop(image)
    step = max(1, math.isqrt(image.size // _MEAN_LUMA_PIXELS))
    grid = image[::step, ::step]
    return int(grid.sum(dtype=np.uint64)) / grid.size


def frame_time_s(frame: av.Frame) -> float | None:
    """A frame's presentation time in seconds, or None when it has no pts or time base."""
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


class FlashDetector:
    """Finds flash frames in a video stream, one frame at a time.

    A flash is the first frame of a run of frames brighter than the threshold, so a flash frame that a recorder
    repeated (frame-rate conversion, a late frame held) still counts once.
    """

    def __init__(self, *, threshold: float = FLASH_LUMA_THRESHOLD, region: Region | None = None) -> None:
        self.threshold = threshold
        self.region = region
        self.flashes_s: list[float] = []
        self._bright = False
        self._frames = 0

    def push(self, frame: av.VideoFrame, time_s: float | None = None) -> float | None:
        """Look at the next frame; returns the flash's time when this frame starts one.

        `time_s` overrides the frame's `pts · time_base` (e.g. an arrival time); without either, the frame's
        index is used as its time, which only makes sense for counting.
        """
        when = time_s if time_s is not None else frame_time_s(frame)
        self._frames += 1
        return self.push_luma(mean_luma(frame, self.region), float(self._frames - 1) if when is None else when)

    def push_luma(self, mean: float, time_s: float) -> float | None:
        """Like `push` for a frame whose mean luma is already known."""
        bright = mean >= self.threshold
        started = bright and not self._bright
        self._bright = bright
        if not started:
            return None
        self.flashes_s.append(time_s)
        return time_s


def detect_flashes(
    frames: Iterable[av.VideoFrame],
    *,
    times_s: Iterable[float] | None = None,
    region: Region | None = None,
    threshold: float = FLASH_LUMA_THRESHOLD,
) -> list[float]:
    """Times in seconds of the flash frames among `frames` (from their pts, or from `times_s` when given)."""
    detector = FlashDetector(threshold=threshold, region=region)
    if times_s is None:
        for frame in frames:
            detector.push(frame)
    else:
        for frame, time_s in zip(frames, times_s, strict=True):
            detector.push(frame, time_s)
    return detector.flashes_s


def audio_samples(frame: av.AudioFrame) -> np.ndarray:
    """The frame's samples as mono float64 in [-1, 1] (channels averaged), whatever its sample format."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        data = data.reshape(channels, -1).mean(axis=0) if channels > 1 else data.reshape(-1)
    else:
        data = data.reshape(-1, channels).mean(axis=1) if channels > 1 else data.reshape(-1)
    name = frame.format.name.rstrip("p")
    if name == "s16":
        return data.astype(np.float64) / 32768.0
    if name == "s32":
        return data.astype(np.float64) / 2147483648.0
    if name == "u8":
        return (data.astype(np.float64) - 128.0) / 128.0
    return data.astype(np.float64)


class BeepDetector:
    """Finds beep onsets in an audio stream to the sample, fed in chunks of any size.

    The beep's pitch is measured by demodulating the signal (multiplying by a complex oscillator at that pitch) and
    summing over a window of whole periods; the envelope of a tone that starts at sample s is then a straight
    ramp from s to s + window, whose midpoint gives s. Two windows are used: 10 ms to find beeps, because its
    narrow band rejects noise and other pitches, and two periods (2 ms) to time them, because a short ramp is
    steep, so noise moves its midpoint less (timing error grows with √window).

    A beep is a stretch where the 10 ms envelope rises to the threshold and stays above half of it for the
    minimum duration. The threshold adapts upwards to noisy input: it is at least five times the noise floor,
    the 20th percentile of the envelope's 10 ms means over the last second (beeps may fill most of a second,
    as in a mix of several bots, without being taken for noise). Measured: no false beep in 5 minutes of white
    noise at σ = 0.05, 0.2 or 0.3 of full scale.
    """

    _IDLE, _CONFIRMING, _ACTIVE = range(3)
    _NOISE_FACTOR = 5.0
    _NOISE_QUANTILE = 0.2
    _NOISE_SEGMENTS = 100  # one second of 10 ms segments
    _NOISE_MIN_SEGMENTS = 10

    def __init__(
        self,
        sample_rate: int,
        *,
        frequency_hz: float = BEEP_FREQUENCY_HZ,
        threshold: float = BEEP_THRESHOLD,
        min_duration_s: float = BEEP_MIN_DURATION_S,
    ) -> None:
        self.sample_rate = sample_rate
        self.threshold = threshold
        self.onsets_s: list[float] = []
        self.levels: list[float] = []  # the plateau amplitude of each beep found, in full-scale units
        # 10 ms whatever the pitch: whole periods of any multiple of 100 Hz, so beeps pitched at other multiples
        # of 100 Hz (other bots in a mix) fall exactly on the window's nulls.
        self._window = max(1, round(DETECTION_WINDOW_S * sample_rate))
        self._short_window = max(1, round(2 * sample_rate / frequency_hz))
        self._plateau = max(1, self._window // 2)
        self._min_duration = max(1, round(min_duration_s * sample_rate))
        self._confirm_span = max(self._window + self._plateau, self._min_duration)
        # The oscillator repeats after `period` samples when the frequency is a rational fraction of the rate;
        # indexing a table by (absolute sample % period) keeps its phase exact over hours of audio.
        self._omega = 2 * np.pi * frequency_hz / sample_rate
        period = _exact_period(frequency_hz / sample_rate, limit=sample_rate * 10)
        self._oscillator = np.exp(-1j * self._omega * np.arange(period)) if period else None
        self._next = 0  # absolute index of the next sample to arrive
        # Demodulated samples and the 10 ms envelope of samples [_start, _next): what a confirmation may look at.
        self._demodulated = np.zeros(self._window, np.complex128)
        self._env = np.zeros(self._window)
        self._start = -self._window
        self._noise = 0.0
        self._segment_means: deque[float] = deque(maxlen=self._NOISE_SEGMENTS)
        self._segment_sum = 0.0
        self._segment_fill = 0
        self._scan = 0  # absolute index from which the state machine still has to look
        self._state = self._IDLE
        self._candidate = 0
        # (absolute sample index, time in seconds) of pushed chunks: maps sample positions back to time.
        self._anchors: list[tuple[int, float]] = [(0, 0.0)]

    @property
    def effective_threshold(self) -> float:
        """The threshold in force: the configured one, raised in proportion to the noise heard so far."""
        return max(self.threshold, self._NOISE_FACTOR * self._noise)

    def push(self, samples: np.ndarray, start_s: float | None = None) -> list[float]:
        """Feed mono samples (float in [-1, 1]); returns the onsets (seconds) found in this call.

        `start_s` is the time of the first sample; without it the chunk follows the previous one.
        """
        samples = np.asarray(samples, dtype=np.float64).reshape(-1)
        if start_s is not None:
            self._anchors.append((self._next, start_s))
        if not samples.size:
            return []
        self._learn_noise(self._append(samples))
        found = self._run()
        self._forget()
        return found

    def push_frame(self, frame: av.AudioFrame, time_s: float | None = None) -> list[float]:
        """Feed one decoded audio frame, timed by `time_s` or else its `pts · time_base`."""
        if frame.sample_rate != self.sample_rate:
            raise ValueError(f"frame at {frame.sample_rate} Hz fed to a detector at {self.sample_rate} Hz")
        return self.push(audio_samples(frame), time_s if time_s is not None else frame_time_s(frame))

    def _append(self, samples: np.ndarray) -> np.ndarray:
        """Demodulate new samples and extend the 10 ms envelope; returns the new envelope values."""
        count = samples.size
        index = np.arange(self._next, self._next + count)
        if self._oscillator is not None:
            demodulated = samples * self._oscillator[index % self._oscillator.size]
        else:
            demodulated = samples * np.exp(-1j * self._omega * index)
        self._demodulated = np.concatenate([self._demodulated, demodulated])
        envelope = _window_magnitude(self._demodulated[-(count + self._window) :], self._window)
        self._env = np.concatenate([self._env, envelope])
        self._next += count
        return envelope

    def _learn_noise(self, envelope: np.ndarray) -> None:
        # Segments are aligned to absolute sample numbers, so the floor does not depend on how input is chunked.
        position, completed = 0, False
        while position < envelope.size:
            take = min(self._window - self._segment_fill, envelope.size - position)
            self._segment_sum += float(envelope[position : position + take].sum())
            self._segment_fill += take
            position += take
            if self._segment_fill == self._window:
                self._segment_means.append(self._segment_sum / self._window)
                self._segment_sum, self._segment_fill, completed = 0.0, 0, True
        if completed and len(self._segment_means) >= self._NOISE_MIN_SEGMENTS:
            # sorted() of 100 floats is ~10× cheaper than np.quantile, which dominated the cost per frame.
            ordered = sorted(self._segment_means)
            self._noise = ordered[int(self._NOISE_QUANTILE * (len(ordered) - 1))]

    def _run(self) -> list[float]:
        found: list[float] = []
        while True:
            threshold = self.effective_threshold
            if self._state == self._IDLE:
                above = self._first(self._scan, threshold, above=True)
                if above is None:
                    self._scan = self._next
                    return found
                self._candidate, self._state = above, self._CONFIRMING
            if self._state == self._CONFIRMING:
                if self._next < self._candidate + self._confirm_span:
                    return found
                onset = self._confirm(self._candidate, threshold)
                if onset is not None:
                    found.append(onset)
                # Either way, what follows belongs to this beep (or blip) until the envelope falls again.
                self._state, self._scan = self._ACTIVE, self._candidate
            if self._state == self._ACTIVE:
                below = self._first(self._scan, threshold / 2, above=False)
                if below is None:
                    self._scan = self._next
                    return found
                self._state, self._scan = self._IDLE, below

    def _first(self, start: int, level: float, *, above: bool) -> int | None:
        """Absolute index of the first envelope sample at or after `start` at or above (or below) `level`."""
        offset = max(start, self._start)
        envelope = self._env[offset - self._start :]
        hits = np.flatnonzero(envelope >= level if above else envelope < level)
        return None if not hits.size else offset + int(hits[0])

    def _confirm(self, candidate: int, threshold: float) -> float | None:
        """The onset time of the beep whose envelope reached the threshold at `candidate`, None if too short."""
        at = candidate - self._start
        if self._env[at : at + self._min_duration].min() < threshold / 2:
            return None
        plateau = self._env[at + self._window : at + self._window + self._plateau]
        level = float(np.median(plateau))
        # The onset is at most a sample after the candidate (the envelope only sees the past), so the short
        # envelope's ramp ends by candidate + short window; walk back from there to its midpoint.
        short = self._short_window
        first = max(at - self._window, short)  # the earliest window end with a full window of samples before it
        # envelope[j]: the short window ending at array index first + j, up to a margin past the candidate.
        envelope = _window_magnitude(self._demodulated[first - short : at + 2 * short + 1], short)
        base = self._start + first
        under = np.flatnonzero(envelope < level / 2)
        if not under.size:
            crossing = float(base)
        else:
            i = int(under[-1])
            low = float(envelope[i])
            high = float(envelope[i + 1]) if i + 1 < envelope.size else level
            crossing = base + i + ((level / 2 - low) / (high - low) if high > low else 0.0)
        onset_s = self._time_of(crossing + 1 - short / 2)
        self.levels.append(level)
        self.onsets_s.append(onset_s)
        return onset_s

    def _time_of(self, index: float) -> float:
        position = bisect.bisect_right(self._anchors, (math.floor(index), math.inf)) - 1
        anchor_index, anchor_s = self._anchors[max(0, position)]
        return anchor_s + (index - anchor_index) / self.sample_rate

    def _forget(self) -> None:
        # Keep what a pending confirmation can still look at: two windows before the candidate (or scan point).
        keep_from = (self._candidate if self._state == self._CONFIRMING else self._scan) - 2 * self._window
        drop = min(keep_from, self._next - self._window) - self._start
        if drop > 0:
            self._env = self._env[drop:]
            self._demodulated = self._demodulated[drop:]
            self._start += drop
        position = bisect.bisect_right(self._anchors, (self._start, math.inf)) - 1
        if position > 0:
            del self._anchors[:position]


def _window_magnitude(demodulated: np.ndarray, window: int) -> np.ndarray:
    """2/window · |sum of the last `window` samples| for each sample after the first `window`: the amplitude
    of the demodulated tone over a sliding window."""
    sums = np.concatenate([[0], np.cumsum(demodulated)])
    return np.abs(sums[window + 1 :] - sums[1 : sums.size - window]) * (2.0 / window)


def _exact_period(ratio: float, limit: int) -> int:
    """Smallest n ≤ limit with ratio·n an integer (the oscillator's period in samples), or 0 if there is none."""
    fraction = Fraction(ratio).limit_denominator(limit)
    if abs(float(fraction) - ratio) > 1e-12:
        return 0
    return fraction.denominator


def detect_beeps(
    audio: np.ndarray | Iterable[av.AudioFrame],
    sample_rate: int | None = None,
    *,
    start_s: float = 0.0,
    times_s: Iterable[float] | None = None,
    threshold: float = BEEP_THRESHOLD,
    min_duration_s: float = BEEP_MIN_DURATION_S,
) -> list[float]:
    """Onset times in seconds of the beeps in `audio`.

    `audio` is either a mono array of float samples in [-1, 1] (give `sample_rate`; sample 0 is at `start_s`) or
    decoded audio frames (timed by their pts, or by `times_s`).
    """
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise ValueError("a sample array needs its sample_rate")
        detector = BeepDetector(sample_rate, threshold=threshold, min_duration_s=min_duration_s)
        detector.push(np.zeros(0), start_s)
        # Fed in 20 ms chunks like a live stream, so the noise floor evolves the same way it would live.
        chunk = max(1, sample_rate // 50)
        for position in range(0, len(audio), chunk):
            detector.push(audio[position : position + chunk])
        return detector.onsets_s
    frames = iter(audio)
    times = iter(times_s) if times_s is not None else None
    beeps: BeepDetector | None = None
    for frame in frames:
        if beeps is None:
            beeps = BeepDetector(frame.sample_rate, threshold=threshold, min_duration_s=min_duration_s)
        beeps.push_frame(frame, next(times) if times is not None else None)
    return beeps.onsets_s if beeps is not None else []


@dataclass(frozen=True)
class SyncReport:
    """How far each beep is from its flash: positive offsets mean the audio comes late."""

    offsets_ms: list[float]
    unpaired_flashes_s: list[float] = field(default_factory=list)
    unpaired_beeps_s: list[float] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        """How many flash/beep pairs were found."""
        return len(self.offsets_ms)

    @property
    def median_ms(self) -> float | None:
        """Median offset (audio − video), None when nothing paired."""
        return statistics.median(self.offsets_ms) if self.offsets_ms else None

    @property
    def worst_ms(self) -> float | None:
        """The offset furthest from zero (signed), None when nothing paired."""
        return max(self.offsets_ms, key=abs) if self.offsets_ms else None


def pair_marks(
    flashes_s: Sequence[float], beeps_s: Sequence[float], *, max_distance_s: float = MAX_PAIR_DISTANCE_S
) -> SyncReport:
    """Pair each flash with the nearest beep (one to one, at most `max_distance_s` apart) and report the offsets.

    Offsets are in flash order; marks left without a partner are listed so a test can tell a lost mark from a
    late one.
    """
    beeps = sorted(beeps_s)
    candidates: list[tuple[float, int, int]] = []
    for f, flash in enumerate(flashes_s):
        position = bisect.bisect_left(beeps, flash)
        for b in (position - 1, position):
            if 0 <= b < len(beeps) and abs(beeps[b] - flash) <= max_distance_s:
                candidates.append((abs(beeps[b] - flash), f, b))
    candidates.sort()
    partner: dict[int, int] = {}
    used: set[int] = set()
    for _, f, b in candidates:
        if f not in partner and b not in used:
            partner[f] = b
            used.add(b)
    return SyncReport(
        offsets_ms=[(beeps[partner[f]] - flashes_s[f]) * 1000 for f in sorted(partner)],
        unpaired_flashes_s=[flash for f, flash in enumerate(flashes_s) if f not in partner],
        unpaired_beeps_s=[beep for b, beep in enumerate(beeps) if b not in used],
    )


def offsets_from_marks_ms(times_s: Iterable[float], origin_s: float) -> list[float]:
    """How far each time is from the nearest mark instant origin + k seconds, in ms (in [−500, 500)).

    With `origin_s` the sender's clock start on the same wall clock, this is the delay of each received mark.
    """
    return [((t - origin_s + 0.5) % 1.0 - 0.5) * 1000 for t in times_s]
