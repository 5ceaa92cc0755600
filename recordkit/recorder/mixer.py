"""The audio mix of a recording: every participant's audio at 48 kHz, placed by presentation time, summed, and
kept below full scale by a limiter (recordings.md §9.3; design.md "A recording's path").

Timeline. Times are seconds on the recording's timeline, given by the caller; sample `i` of the mix is at
`i / 48000` s. Each participant has a ring buffer covering `[cursor, cursor + window)`, where the cursor is the
end of the last `mix()`. A frame is placed at `round(pts_s · 48000)`, so arrival order does not matter:

* A frame that follows the participant's previous one within `CONTIGUOUS_TOLERANCE_S` is written right after
  it, so timestamp rounding and jitter never open hairline gaps or overlaps (which would click). A bigger jump
  either way re-anchors the participant at the frame's own time (a gap in their input stays silent).
* Audio for time the mix has already produced is late and dropped (counted in `late_samples`); audio beyond
  the window is dropped too (`early_samples`). Where a participant's frames overlap, the newest write wins.
* Missing input is silence.

Limiter. The sum of N participants can reach N× full scale. Each output sample gets a gain `g ≤ ceiling / peak`
(peak over the channels of that sample), so the output never exceeds the ceiling (−1 dBFS, which also leaves
the lossy encoders room for their overshoot) and never clips. The gain is smooth: it is the minimum of the
needed gain over the next 5 ms, averaged over the last 5 ms (a lookahead limiter: the gain ramps down over
5 ms before a peak instead of jumping at it, and the average of values that are each ≤ the needed gain is
≤ it too), and it recovers at 60 dB/s. The lookahead reads audio already in the rings after the block being
mixed, so it adds no delay of its own; it works best when the caller mixes a little behind the newest input
(its jitter delay). All gain arithmetic is in log2 units.

Levels. Each block also measures every participant's level (before the limiter), and `speakers` (a
`SpeakerMeter`) says from those who the active speaker is, for the composite's outline.
"""

from __future__ import annotations

import math

import av
import numpy as np

from recordkit.recorder.plan import SAMPLE_RATE
from recordkit.recorder.speaker import SpeakerMeter

CEILING = 10 ** (-1 / 20)  # −1 dBFS
LOOKAHEAD_S = 0.005
RELEASE_DB_PER_S = 60.0
CONTIGUOUS_TOLERANCE_S = 0.005
_LOG2_PER_DB = 1 / (20 * math.log10(2))


class _Input:
    """One participant's audio: a resampler to the mix's format and a ring of float samples."""

    def __init__(self, channels: int, size: int) -> None:
        self.ring = np.zeros((channels, size), np.float32)
        self.resampler: av.AudioResampler | None = None  # None while the input needs none (or before any)
        self.input_format: tuple[str, str, int] | None = None  # (format, layout, rate) of the input so far
        self.expected_in: float | None = None  # where the next input frame would start if contiguous, seconds
        self.write_index = 0  # where the next resampled sample goes, absolute sample index
        self.written_until = 0  # end of the furthest sample written, absolute sample index
        self.leaving = False


class Mixer:
    """Mixes participants' audio into 48 kHz int16 blocks.

    Not thread-safe: call `push`, `remove` and `mix` from one thread. None of them blocks on I/O.
    """

    def __init__(self, channels: int = 2, *, sample_rate: int = SAMPLE_RATE, window_s: float = 2.0) -> None:
        if channels not in (1, 2):
            raise ValueError("channels must be 1 (mono) or 2 (stereo)")
        self.channels = channels
        self.sample_rate = sample_rate
        self.layout = "mono" if channels == 1 else "stereo"
        self.late_samples = 0
        self.early_samples = 0
        self.speakers = SpeakerMeter(sample_rate)
        self._size = round(window_s * sample_rate)
        self._inputs: dict[str, _Input] = {}
        self._cursor = 0
        self._lookahead = max(1, round(LOOKAHEAD_S * sample_rate))
        self._release = RELEASE_DB_PER_S * _LOG2_PER_DB / sample_rate
        self._gain = 0.0  # log2 gain of the last output sample
        self._history = np.zeros(self._lookahead, np.float32)  # log2 gain needed by the last mixed samples

    def push(self, participant_id: str, frame: av.AudioFrame, pts_s: float) -> None:
        """Add a participant's audio frame (any rate, layout and sample format) starting at `pts_s`."""
        source = self._inputs.get(participant_id)
        if source is None:
            source = self._inputs[participant_id] = _Input(self.channels, self._size)
        source.leaving = False
        input_format = (frame.format.name, frame.layout.name, frame.sample_rate)
        contiguous = source.expected_in is not None and abs(pts_s - source.expected_in) <= CONTIGUOUS_TOLERANCE_S
        if input_format != source.input_format or not contiguous:
            # A new stream or a jump: start over, so the resampler's buffered tail is not spliced onto it.
            # Mono and stereo keep their layout here and are mapped below; swresample would take 3 dB off a
            # mono voice spread over two channels. Anything wider is downmixed by swresample. Audio already at
            # the mix's rate in a plain format (what decoders give) needs no resampler: its samples are converted
            # to float as swresample would, at a fraction of its cost per frame.
            channels = frame.layout.nb_channels
            direct = frame.sample_rate == self.sample_rate and channels <= 2 and frame.format.name in _DIRECT_FORMATS
            layout = frame.layout.name if channels <= 2 else self.layout
            source.resampler = (
                None if direct else av.AudioResampler(format="fltp", layout=layout, rate=self.sample_rate)
            )
            source.input_format = input_format
            source.write_index = round(pts_s * self.sample_rate)
            source.expected_in = pts_s
        assert source.expected_in is not None
        source.expected_in += frame.samples / frame.sample_rate
        if source.resampler is None:
            blocks = [_float_samples(frame)]
        else:
            blocks = [converted.to_ndarray() for converted in source.resampler.resample(frame)]
        for samples in blocks:
            if samples.shape[0] != self.channels:
                # mono → both channels at full level; stereo → mono as the mean of the two
                samples = np.repeat(samples, 2, axis=0) if self.channels == 2 else samples.mean(axis=0, keepdims=True)
            self._write(source, samples)

    def remove(self, participant_id: str) -> None:
        """The participant left: what they sent is still mixed, then they are forgotten."""
        source = self._inputs.get(participant_id)
        if source is not None:
            source.leaving = True

    def mix(self, start_s: float, n_samples: int) -> np.ndarray:
        """The mix of `[start_s, start_s + n_samples / 48000)` as int16, shaped (channels, n_samples).

        Call with consecutive blocks (each starting where the last ended). A block that starts later skips the
        audio in between; one that starts earlier gets silence for the part already mixed.
        """
        start = round(start_s * self.sample_rate)
        if start > self._cursor:
            self._consume(self._cursor, start - self._cursor)
            self._cursor = start
        # The part of the block before the cursor was mixed already: it stays silent.
        fresh = max(0, min(n_samples, start + n_samples - self._cursor))
        skip = n_samples - fresh
        total = np.zeros((self.channels, fresh + self._lookahead), np.float32)
        heard: dict[str, np.ndarray] = {}
        for participant_id, source in self._inputs.items():
            samples = self._read(source, self._cursor, fresh + self._lookahead)
            total += samples
            heard[participant_id] = samples[:, :fresh]
        if fresh:
            self.speakers.update(heard, self._cursor / self.sample_rate)
        self._consume(self._cursor, fresh)
        self._cursor += fresh
        self._inputs = {
            pid: s for pid, s in self._inputs.items() if not (s.leaving and s.written_until <= self._cursor)
        }
        out = np.zeros((self.channels, n_samples), np.int16)
        out[:, skip:] = np.rint(self._limit(total, fresh) * 32767).astype(np.int16)
        return out

    def _limit(self, total: np.ndarray, n: int) -> np.ndarray:
        """The first `n` samples of `total` (which holds `n` plus the lookahead) with the limiter's gain."""
        look = self._lookahead
        peak = np.abs(total).max(axis=0)
        if n == 0 or (peak.max() <= CEILING and self._gain == 0.0 and not self._history.any()):
            self._history = np.concatenate([self._history, np.zeros(n, np.float32)])[-look:]
            return total[:, :n]
        needed = np.minimum(0.0, np.log2(CEILING / np.maximum(peak, 1e-12))).astype(np.float32)
        # needed gains from `look` samples before the block to `look` samples after it
        extended = np.concatenate([self._history, needed])
        window_min = _sliding_min(extended, look + 1)  # window_min[k]: min of extended[k .. k + look]
        sums = np.concatenate([[0.0], np.cumsum(window_min, dtype=np.float64)])
        # smoothed[i]: the mean of window_min over the `look + 1` positions ending at the block's sample i
        smoothed = (sums[look + 1 : look + 1 + n] - sums[:n]) / (look + 1)
        gain = np.minimum(smoothed, needed[:n])  # exact already; guards against rounding in the mean
        ramp = self._release * np.arange(n)
        held = np.minimum.accumulate(np.concatenate([[self._gain + self._release], gain - ramp]))[1:]
        gain = held + ramp  # recovery limited to the release rate
        self._gain = float(gain[-1])
        self._history = extended[n : n + look]
        return total[:, :n] * np.exp2(gain).astype(np.float32)

    def _write(self, source: _Input, samples: np.ndarray) -> None:
        start, count = source.write_index, samples.shape[1]
        source.write_index += count
        begin, end = max(start, self._cursor), min(start + count, self._cursor + self._size)
        self.late_samples += max(0, min(count, self._cursor - start))
        self.early_samples += max(0, min(count, start + count - (self._cursor + self._size)))
        if begin >= end:
            return
        for ring_at, index, length in self._spans(begin, end - begin):
            source.ring[:, ring_at : ring_at + length] = samples[:, index - start : index - start + length]
        source.written_until = max(source.written_until, end)

    def _read(self, source: _Input, start: int, count: int) -> np.ndarray:
        out = np.zeros((self.channels, count), np.float32)
        count = min(count, self._cursor + self._size - start)
        for ring_at, index, length in self._spans(start, count):
            out[:, index - start : index - start + length] = source.ring[:, ring_at : ring_at + length]
        return out

    def _consume(self, start: int, count: int) -> None:
        """Zero the ring slots of `[start, start + count)` so they are silent when the window comes round."""
        for ring_at, _, length in self._spans(start, min(count, self._size)):
            for source in self._inputs.values():
                source.ring[:, ring_at : ring_at + length] = 0

    def _spans(self, start: int, count: int) -> list[tuple[int, int, int]]:
        """(ring position, absolute index, length) pieces of `[start, start + count)` in the ring."""
        spans: list[tuple[int, int, int]] = []
        while count > 0:
            ring_at = start % self._size
            length = min(count, self._size - ring_at)
            spans.append((ring_at, start, length))
            start, count = start + length, count - length
        return spans


# Sample formats taken as they are at the mix's rate: int16 and float, interleaved or planar.
_DIRECT_FORMATS = frozenset({"s16", "s16p", "flt", "fltp"})


def _float_samples(frame: av.AudioFrame) -> np.ndarray:
    """A frame in one of `_DIRECT_FORMATS` as float32 shaped (channels, samples), int16 scaled by 1/32768 (as
    swresample converts it). Read from the planes' buffers: `to_ndarray` costs several times more per frame."""
    channels, count = frame.layout.nb_channels, frame.samples
    dtype = np.int16 if frame.format.name.startswith("s16") else np.float32
    if frame.format.is_planar:
        samples = np.stack([np.frombuffer(plane, dtype, count) for plane in frame.planes[:channels]])
    else:
        samples = np.frombuffer(frame.planes[0], dtype, count * channels).reshape(count, channels).T
    if dtype == np.int16:
        return samples.astype(np.float32) * np.float32(1 / 32768)
    # Packed samples are still a view of the frame's buffer, which is not ours to keep; stacked ones a copy already.
    return samples.copy() if not frame.format.is_planar else samples


def _sliding_min(values: np.ndarray, width: int) -> np.ndarray:
    """`out[k] = min(values[k : k + width])` for every full window, in O(n) (van Herk / Gil–Werman)."""
    count = values.size - width + 1
    padded = np.concatenate([values, np.full(-values.size % width, np.inf, values.dtype)]).reshape(-1, width)
    prefix = np.minimum.accumulate(padded, axis=1).reshape(-1)
    suffix = np.minimum.accumulate(padded[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    return np.minimum(suffix[:count], prefix[width - 1 : width - 1 + count])
