"""Synthetic media for the bot: a test-pattern video track and a tone audio track driven by one clock.

Both tracks derive every timestamp from the same `SyntheticClock`, so a sender's audio and video agree to the
sample: at each whole second k ≥ 1 of the clock the video shows one full-white frame (pts = k·90000) and the
audio starts a 100 ms 1 kHz beep (pts = k·sample_rate). Those marks are what `recordkit.bot.marks` finds again
after the media went through a server, a recorder and a file.

Frames are paced in real time from the clock's start instant (never by sleeping a fixed interval, so pacing
does not drift) and are cheap to make: everything that does not change per frame is rendered once.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from recordkit.bitmap_font import printable, text_mask

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_PTIME_S = 0.020
BEEP_FREQUENCY_HZ = 1000.0
BEEP_DURATION_S = 0.100
BEEP_AMPLITUDE = 0.5  # of full scale: −6 dBFS, loud enough to survive mixing with a few others
NOISE_AMPLITUDE = 0.0005  # peak −66 dBFS: "silence" that codecs still treat as signal
FLASH_LUMA = 255
# Nothing but the flash may reach the flash detector's threshold (200): the pattern stays at or below this.
PATTERN_MAX_LUMA = 176
# A consumer that falls this far behind real time skips ahead instead of bursting stale frames.
MAX_LAG_S = 0.5
# What aiortc sends at by default; the pre-encoded loops use the same.
VP8_BITRATE = 500_000
OPUS_BITRATE = 96_000
OPUS_SAMPLE_RATE = 48_000


class SyntheticClock:
    """One start instant shared by a bot's tracks; times are seconds since that instant.

    `start_unix_s` is the same instant on the wall clock, so a receiver in the same process can compare the
    arrival of a mark with the instant it was made.
    """

    def __init__(self) -> None:
        self.start_monotonic_s = time.monotonic()
        self.start_unix_s = time.time()

    def now_s(self) -> float:
        """Seconds elapsed since the clock started (monotonic)."""
        return time.monotonic() - self.start_monotonic_s

    def to_unix_s(self, clock_s: float) -> float:
        """The wall-clock (Unix) time of a clock time."""
        return self.start_unix_s + clock_s

    async def sleep_until(self, clock_s: float) -> None:
        """Sleep until the clock reads `clock_s`; returns at once when that time has passed."""
        delay_s = clock_s - self.now_s()
        if delay_s > 0:
            await asyncio.sleep(delay_s)


class FramePacer:
    """Hands out frame numbers at their clock times (frame n at n·`period_s`), for one track.

    The first number is the next frame due; a consumer that falls more than `MAX_LAG_S` behind skips ahead
    rather than bursting stale frames. With `step` > 1 numbers only start and resume at multiples of `step` (a
    loop of `step` pre-encoded frames must not be entered mid-loop).
    """

    def __init__(self, clock: SyntheticClock, period_s: float, step: int = 1) -> None:
        self.clock = clock
        self.period_s = period_s
        self.step = step
        self.frames_sent = 0
        self.frames_skipped = 0
        self._next: int | None = None

    async def next(self) -> int:
        """The next frame number, returned at its clock time (at once when that has passed)."""
        if self._next is None:
            self._next = self._on_step(math.ceil(self.clock.now_s() / self.period_s))
        index = self._next
        await self.clock.sleep_until(index * self.period_s)
        if self.clock.now_s() - index * self.period_s > MAX_LAG_S:
            skip_to = self._on_step(math.floor(self.clock.now_s() / self.period_s))
            self.frames_skipped += skip_to - index
            index = skip_to
            await self.clock.sleep_until(index * self.period_s)
        self._next = index + 1
        self.frames_sent += 1
        return index

    def _on_step(self, index: int) -> int:
        return math.ceil(index / self.step) * self.step


class PacedTrack(MediaStreamTrack):
    """A track whose frames come at their clock times from a `FramePacer`, counting what it sent and skipped."""

    pacer: FramePacer

    @property
    def clock(self) -> SyntheticClock:
        return self.pacer.clock

    @property
    def frames_sent(self) -> int:
        return self.pacer.frames_sent

    @property
    def frames_skipped(self) -> int:
        """Frames skipped because the consumer fell behind real time."""
        return self.pacer.frames_skipped

    async def _next_index(self) -> int:
        if self.readyState != "live":
            raise MediaStreamError
        return await self.pacer.next()


class SyntheticVideoTrack(PacedTrack):
    """A live yuv420p test pattern: scrolling stripes, a moving bar, the frame number, and a white flash frame at
    every whole second of the clock.

    Frame n has clock time n/fps and pts n·(90000/fps) in a 1/90000 time base. The first `recv()` starts at the
    current clock time, so a track that starts late still puts its flashes at whole seconds.
    """

    kind = "video"

    def __init__(
        self, clock: SyntheticClock, width: int = 640, height: int = 360, fps: int = 30, label: str = ""
    ) -> None:
        super().__init__()
        if width % 2 or height % 2:
            raise ValueError("yuv420p needs an even width and height")
        if fps <= 0 or VIDEO_CLOCK_RATE % fps:
            raise ValueError("fps must divide 90000 so every frame has an exact pts")
        self.width = width
        self.height = height
        self.fps = fps
        self.pacer = FramePacer(clock, 1 / fps)
        self._pts_per_frame = VIDEO_CLOCK_RATE // fps
        self._pattern = _VideoPattern(width, height, label)

    async def recv(self) -> av.VideoFrame:
        """The next frame, returned at its clock time."""
        return self.frame_at(await self._next_index())

    def frame_at(self, index: int) -> av.VideoFrame:
        """Frame number `index` (clock time index/fps), without waiting; used by `recv()` and by tests."""
        if index > 0 and index % self.fps == 0:
            data = self._pattern.flash
        else:
            data = self._pattern.render(index)
        frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
        frame.pts = index * self._pts_per_frame
        frame.time_base = VIDEO_TIME_BASE
        return frame


class SyntheticAudioTrack(PacedTrack):
    """Live s16 audio in 20 ms frames: near-silence, and a 1 kHz beep of 100 ms starting at each whole second.

    Frame m covers samples [m·n, (m+1)·n) with n = sample_rate/50; pts counts samples (time base
    1/sample_rate), so sample s is at clock time s/sample_rate exactly like the video's frames.

    `beep_frequency_hz` gives bots distinct pitches, so a mix of several can be told apart by
    `BeepDetector(frequency_hz=…)`; use multiples of 100 Hz, which the detector's 10 ms band rejects exactly.
    """

    kind = "audio"

    def __init__(
        self,
        clock: SyntheticClock,
        sample_rate: int = 48_000,
        channels: int = 1,
        beep_frequency_hz: float = BEEP_FREQUENCY_HZ,
    ) -> None:
        super().__init__()
        if sample_rate % 50:
            raise ValueError("sample_rate must be a multiple of 50 so 20 ms frames tile each second")
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        self.sample_rate = sample_rate
        self.channels = channels
        self.pacer = FramePacer(clock, AUDIO_PTIME_S)
        self._samples_per_frame = round(sample_rate * AUDIO_PTIME_S)
        self._frames_per_second = sample_rate // self._samples_per_frame
        self._layout = "mono" if channels == 1 else "stereo"
        self._time_base = fractions.Fraction(1, sample_rate)
        # One second of audio each way, interleaved for packed s16; a frame is a slice of one of them.
        quiet, beep = _audio_seconds(sample_rate, beep_frequency_hz)
        self._quiet_second, self._beep_second = np.repeat(quiet, channels), np.repeat(beep, channels)

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms frame, returned at its clock time."""
        return self.frame_at(await self._next_index())

    def frame_at(self, index: int) -> av.AudioFrame:
        """Frame number `index` (20 ms each), without waiting; used by `recv()` and by tests."""
        second, slot = divmod(index, self._frames_per_second)
        source = self._beep_second if second >= 1 else self._quiet_second
        width = self._samples_per_frame * self.channels
        data = source[slot * width : (slot + 1) * width].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout=self._layout)
        frame.sample_rate = self.sample_rate
        frame.pts = index * self._samples_per_frame
        frame.time_base = self._time_base
        return frame


class EncodedLoopVideoTrack(PacedTrack):
    """The synthetic video encoded once to VP8 and sent as a one-second loop of packets: no per-frame encoding.

    For load tests (many bots in one process): aiortc's real-time VP8 encode of 640×360 costs ~5–15 ms of CPU
    per frame, this costs nothing per frame. Each second starts with the flash frame, which is also the loop's
    keyframe, so marks stay on whole seconds and a new receiver gets a picture within a second (keyframe
    requests cannot be honoured sooner). The drawn number counts frames within the second (1–29). Sending
    starts at the next whole second, and a sender that falls behind skips to a later one (never mid-loop,
    which would break the decoder's references).

    The loop is encoded when the track is created (0.1–0.3 s of CPU at 640×360), on the calling thread: in a worker
    thread of a busy process the GIL hand-offs stretched it to seconds. Create tracks before joining.
    """

    kind = "video"

    def __init__(
        self,
        clock: SyntheticClock,
        width: int = 640,
        height: int = 360,
        fps: int = 30,
        label: str = "",
        bitrate: int = VP8_BITRATE,
    ) -> None:
        super().__init__()
        self.fps = fps
        self.pacer = FramePacer(clock, 1 / fps, step=fps)
        self._source = SyntheticVideoTrack(clock, width, height, fps, label)
        frames = [self._source.frame_at(fps)] + [self._source.frame_at(i) for i in range(1, fps)]
        self.payloads = encode_vp8(frames, bitrate, fps)  # the loop's VP8 frames, keyframe (the flash) first

    async def recv(self) -> av.Packet:
        """The next encoded frame, returned at its clock time."""
        return self.packet_at(await self._next_index())

    def packet_at(self, index: int) -> av.Packet:
        """Encoded frame number `index` (a loop position), without waiting; used by `recv()` and by tests."""
        packet = av.Packet(self.payloads[index % self.fps])
        packet.pts = index * (VIDEO_CLOCK_RATE // self.fps)
        packet.time_base = VIDEO_TIME_BASE
        return packet


class EncodedLoopAudioTrack(PacedTrack):
    """The synthetic audio encoded once to Opus (48 kHz stereo, 20 ms packets) and sent as a one-second loop.

    The loop is cut from the middle of a longer encoding, so the seam (where the decoder's state jumps) falls
    half-way between beeps. Packets keep the encoder's own timing, so a receiver decodes each beep exactly on its
    whole second, without the 6.5 ms of Opus look-ahead that encoding live through aiortc adds. Encoded when
    created (~30 ms of CPU), like the video loop.
    """

    kind = "audio"

    def __init__(self, clock: SyntheticClock, beep_frequency_hz: float = BEEP_FREQUENCY_HZ) -> None:
        super().__init__()
        self.pacer = FramePacer(clock, AUDIO_PTIME_S)
        source = SyntheticAudioTrack(clock, OPUS_SAMPLE_RATE, beep_frequency_hz=beep_frequency_hz)
        # One Opus packet per 20 ms slot of a second, and the encoder's look-ahead in samples.
        self.payloads, self._delay = _encode_opus_second(source)

    async def recv(self) -> av.Packet:
        """The next encoded 20 ms, returned at its clock time."""
        return self.packet_at(await self._next_index())

    def packet_at(self, index: int) -> av.Packet:
        """Encoded 20 ms number `index`, without waiting; used by `recv()` and by tests."""
        samples = round(OPUS_SAMPLE_RATE * AUDIO_PTIME_S)
        packet = av.Packet(self.payloads[index % len(self.payloads)])
        packet.pts = index * samples - self._delay
        packet.time_base = fractions.Fraction(1, OPUS_SAMPLE_RATE)
        return packet


def encode_vp8(frames: list[av.VideoFrame], bitrate: int, fps: int) -> list[bytes]:
    """VP8 as aiortc encodes for real time (CBR, no look-ahead), one keyframe at the start."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
    codec.bit_rate = bitrate
    codec.gop_size = 3000  # only the first frame is a keyframe (a loop restarts on it)
    codec.time_base = fractions.Fraction(1, fps)  # rate control needs the frame rate
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "-6",
        "lag-in-frames": "0",
        "bufsize": str(bitrate),
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "static-thresh": "1",
    }
    payloads = []
    for position, frame in enumerate(frames):
        frame.pts = position  # the encoder wants increasing pts; the loop's packets get theirs when sent
        frame.time_base = codec.time_base
        payloads += [bytes(packet) for packet in codec.encode(frame)]
    if len(payloads) != len(frames):
        raise RuntimeError(f"VP8 gave {len(payloads)} packets for {len(frames)} frames")
    return payloads


def _encode_opus_second(source: SyntheticAudioTrack) -> tuple[list[bytes], int]:
    """One second of Opus packets cut from [1.5 s, 2.5 s) of the source (a beep in its middle), in slot order
    (slot s holds the audio for s·20 ms into a second), and the encoder's look-ahead in samples."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = OPUS_SAMPLE_RATE, "stereo", "s16"
    codec.bit_rate = OPUS_BITRATE
    codec.time_base = fractions.Fraction(1, OPUS_SAMPLE_RATE)
    codec.options = {"application": "voip"}
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_SAMPLE_RATE, frame_size=960)
    by_pts: dict[int, bytes] = {}
    for index in range(3 * source._frames_per_second):
        for chunk in resampler.resample(source.frame_at(index)):
            by_pts.update((packet.pts, bytes(packet)) for packet in codec.encode(chunk))
    delay = -min(by_pts)  # the first packet starts before sample 0 by the encoder's look-ahead
    samples = source._samples_per_frame
    second = OPUS_SAMPLE_RATE
    slots = []
    for slot in range(source._frames_per_second):
        # The source position with the same phase within its second, inside [1.5 s, 2.5 s).
        position = 3 * second // 2 + (slot * samples - second // 2) % second
        slots.append(by_pts[position - delay])
    return slots, delay


def _audio_seconds(sample_rate: int, frequency_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """One second of quiet noise, and the same second with the beep at its start (mono int16)."""
    rng = np.random.default_rng(1000)
    noise = rng.uniform(-NOISE_AMPLITUDE, NOISE_AMPLITUDE, sample_rate)
    beep_samples = round(BEEP_DURATION_S * sample_rate)
    n = np.arange(beep_samples)
    # Starts at phase 0 on the mark's exact sample (no ramp, so the onset is a single sample) and, at 1 kHz,
    # ends at phase 0 after 100 whole cycles: no click either.
    beep = BEEP_AMPLITUDE * np.sin(2 * np.pi * frequency_hz * n / sample_rate)
    with_beep = noise.copy()
    with_beep[:beep_samples] += beep
    return _to_s16(noise), _to_s16(with_beep)


def _to_s16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)


class _VideoPattern:
    """Pre-rendered pieces of the test pattern, assembled per frame with a few slice copies."""

    STRIPE_PERIOD = 64
    SCROLL_PX_PER_FRAME = 4
    BAR_WIDTH = 24
    BAR_PX_PER_FRAME = 6
    DIGITS = 6
    DIGIT_SCALE = 8
    LABEL_SCALE = 3
    MARGIN = 16

    def __init__(self, width: int, height: int, label: str) -> None:
        self.width = width
        self.height = height
        rows = np.arange(height)[:, None]
        cols = np.arange(width + self.STRIPE_PERIOD)[None, :]
        # Diagonal stripes, one period wider than the frame: scrolling is a slice, not a re-render.
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (cols + rows) / self.STRIPE_PERIOD)
        self._stripes = (40 + 100 * stripes).astype(np.uint8)
        # Chroma is static (a hue gradient); the moving luma already makes every frame different.
        u_cols = np.linspace(64, 192, width // 2)
        v_rows = np.linspace(192, 64, height // 2)[:, None]
        u = np.broadcast_to(u_cols, (height // 2, width // 2)).astype(np.uint8)
        v = np.broadcast_to(v_rows, (height // 2, width // 2)).astype(np.uint8)
        # yuv420p as PyAV's from_ndarray reads it: the Y, U and V planes back to back, shaped (height·3/2, width).
        self._luma_size = width * height
        self._chroma = np.concatenate([u.reshape(-1), v.reshape(-1)])
        self.flash = np.full(self._luma_size * 3 // 2, 128, np.uint8)
        self.flash[: self._luma_size] = FLASH_LUMA
        self.flash = self.flash.reshape(-1, width)
        self._digits = [text_mask(str(d), self.DIGIT_SCALE) for d in range(10)]
        self._digit_step = self._digits[0].shape[1] + self.DIGIT_SCALE
        self._label = text_mask(printable(label)[: self._label_chars()], self.LABEL_SCALE) if label else None

    def _label_chars(self) -> int:
        return max(0, (self.width - 2 * self.MARGIN) // (6 * self.LABEL_SCALE))

    def render(self, index: int) -> np.ndarray:
        height, width, margin = self.height, self.width, self.MARGIN
        out = np.empty(self._luma_size * 3 // 2, np.uint8)
        shift = (index * self.SCROLL_PX_PER_FRAME) % self.STRIPE_PERIOD
        luma = out[: self._luma_size].reshape(height, width)
        luma[:] = self._stripes[:, shift : shift + width]
        out[self._luma_size :] = self._chroma
        bar_x = (index * self.BAR_PX_PER_FRAME) % max(1, width - self.BAR_WIDTH)
        luma[:, bar_x : bar_x + self.BAR_WIDTH] = PATTERN_MAX_LUMA - 16
        # The frame number, zero-padded so the box keeps its size, on a dark box for contrast.
        glyph_h = self._digits[0].shape[0]
        box_w = self.DIGITS * self._digit_step + self.DIGIT_SCALE
        if margin + glyph_h + 2 * self.DIGIT_SCALE <= height and margin + box_w <= width:
            luma[margin : margin + glyph_h + 2 * self.DIGIT_SCALE, margin : margin + box_w] = 16
            text = str(index % 10**self.DIGITS).zfill(self.DIGITS)
            top, left = margin + self.DIGIT_SCALE, margin + self.DIGIT_SCALE
            for position, char in enumerate(text):
                x = left + position * self._digit_step
                cell = luma[top : top + glyph_h, x : x + self._digits[0].shape[1]]
                cell[self._digits[int(char)]] = PATTERN_MAX_LUMA
        if self._label is not None:
            label_h, label_w = self._label.shape
            top = height - margin - label_h
            if top >= 0 and margin + label_w <= width:
                area = luma[top - self.LABEL_SCALE : top + label_h + self.LABEL_SCALE, margin : margin + label_w]
                area[:] = 16
                area[self.LABEL_SCALE : self.LABEL_SCALE + label_h][self._label] = PATTERN_MAX_LUMA
        return out.reshape(-1, width)
