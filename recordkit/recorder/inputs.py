"""What a recorder's event loop has read and its worker thread has yet to use: bounded, per participant.

Frames wait here encoded, each with the `TrackDecoder` of its track, until the output reaches their send time,
normally a jitter delay (a few frames); the worker thread decodes them as it takes them. The event loop then
only queues a frame (no hand-off to a decoding thread and back for each), and a queue holds bytes as sent, not
pictures. A peer whose frames are dated ahead, or a worker that stalls, would otherwise grow a queue without
end; each queue keeps at most so many frames and bytes, dropping the oldest, and counts what it dropped.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from recordkit.meetings.media.reading import TimedFrame, TrackDecoder
from recordkit.meetings.media.receiving import EncodedFrame

log = logging.getLogger(__name__)

# Two seconds of 30 fps video, within 16 MB (what a `PacketReader` holds at most too).
MAX_VIDEO_FRAMES = 60
MAX_VIDEO_BYTES = 16 * 1024 * 1024
# Ten seconds of 20 ms audio frames.
MAX_AUDIO_FRAMES = 500
MAX_AUDIO_BYTES = 8 * 1024 * 1024


class FrameQueue:
    """Encoded frames of one participant and kind, oldest first. The event loop appends, the worker thread
    takes (and decodes); a lock keeps the byte count true between the two."""

    def __init__(self, name: str, max_frames: int, max_bytes: int) -> None:
        self.name = name
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.dropped = 0
        self._frames: deque[tuple[EncodedFrame, TrackDecoder]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def append(self, encoded: EncodedFrame, decoder: TrackDecoder) -> None:
        with self._lock:
            self._frames.append((encoded, decoder))
            self._bytes += len(encoded.data)
            dropped_before = self.dropped
            while len(self._frames) > self.max_frames or (self._bytes > self.max_bytes and len(self._frames) > 1):
                oldest, _ = self._frames.popleft()
                self._bytes -= len(oldest.data)
                self.dropped += 1
        if dropped_before == 0 and self.dropped:
            log.warning("%s: frames arrive faster than the output uses them; dropping the oldest", self.name)

    def take_until(self, wall_s: float) -> list[TimedFrame]:
        """Remove the frames sent at or before `wall_s` and return them decoded (in the calling thread)."""
        taken = []
        with self._lock:
            while self._frames and self._frames[0][0].wall_time_s <= wall_s:
                encoded, decoder = self._frames.popleft()
                self._bytes -= len(encoded.data)
                taken.append((encoded, decoder))
        return [timed for encoded, decoder in taken for timed in decoder.decode(encoded)]

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def queued_bytes(self) -> int:
        return self._bytes


@dataclass
class Inputs:
    """What the event loop queued for the worker thread: frames per participant, and changes to apply."""

    video: dict[str, FrameQueue] = field(default_factory=dict)
    audio: dict[str, FrameQueue] = field(default_factory=dict)
    changes: deque[Callable[[], None]] = field(default_factory=deque)
    # Dropped by the queues of participants who left: `dropped` stays a total over the whole recording.
    dropped_by_gone: int = 0

    def queue(self, kind: str, peer_id: str) -> FrameQueue:
        """The participant's queue of that kind, made on first use."""
        if kind == "video":
            queues, max_frames, max_bytes = self.video, MAX_VIDEO_FRAMES, MAX_VIDEO_BYTES
        else:
            queues, max_frames, max_bytes = self.audio, MAX_AUDIO_FRAMES, MAX_AUDIO_BYTES
        if peer_id not in queues:
            queues[peer_id] = FrameQueue(f"{kind} of {peer_id}", max_frames, max_bytes)
        return queues[peer_id]

    def forget(self, peer_id: str) -> None:
        for queues in (self.video, self.audio):
            gone = queues.pop(peer_id, None)
            if gone is not None:
                self.dropped_by_gone += gone.dropped

    @property
    def dropped(self) -> int:
        """Frames dropped since the recording began, by every queue."""
        return self.dropped_by_gone + sum(queue.dropped for queue in [*self.video.values(), *self.audio.values()])
