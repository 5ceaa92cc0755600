"""This process's Prometheus metrics (`GET /metrics`): the instruments live in a registry the app owns, never in
prometheus-client's global one, so two apps in one process (the tests) count apart.

The parts that do the work are handed the `Metrics` object by app.py and say what happened through its methods;
the label values are fixed here, so every process reports the same series.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# The classic text format, which `generate_latest` writes (0.26's CONTENT_TYPE_LATEST names version 1.0.0).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# The recorder's pacing bands (recorder/composite.py `next_tick`): 1 s late it starts skipping frames, 2 s jumps.
CAPTURE_LAG_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 5.0)
# Up to the INVOKED timeout (10 min) a waiting record job can see.
QUEUE_WAIT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

BUILTIN = "builtin"  # the upload target that is recordkit's own bucket; external ones are their storage type
WEBHOOK_OUTCOMES = {"DELIVERED": "delivered", "PENDING": "retry", "FAILED": "failed"}


class Metrics:
    """The instruments, and one method per thing worth counting."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._recordings = Gauge(
            "recordkit_recordings",
            "Recordings in the database by state (the whole deployment's, read at each scrape).",
            ["state"],
            registry=self.registry,
        )
        self._capture_lag = Histogram(
            "recordkit_capture_lag_seconds",
            "How far behind real time each composite output frame was written, beyond the recorder's jitter delay.",
            buckets=CAPTURE_LAG_BUCKETS_S,
            registry=self.registry,
        )
        self._frames_dropped = Counter(
            "recordkit_frames_dropped",
            "Frames composite recorders dropped: input (a participant's queue overflowed), skipped (output frames "
            "not rendered because the recorder fell behind), encoder (a frame landed on a slot already written).",
            ["stage"],
            registry=self.registry,
        )
        self._encode_seconds = Counter(
            "recordkit_encode_seconds",
            "Seconds composite recorders' worker threads spent rendering and encoding output frames.",
            registry=self.registry,
        )
        self._recorder_cpu = Counter(
            "recordkit_recorder_cpu_seconds",
            "CPU seconds composite recorders' worker threads spent, by stage: video_decode, compose, video_encode "
            "(muxing included), audio_decode, mix, audio_encode (muxing included).",
            ["stage"],
            registry=self.registry,
        )
        self._queue_wait = Histogram(
            "recordkit_job_queue_wait_seconds",
            "How long a job attempt waited in the queue between falling due and starting, by job kind.",
            ["kind"],
            buckets=QUEUE_WAIT_BUCKETS_S,
            registry=self.registry,
        )
        self._job_attempts = Counter(
            "recordkit_job_attempts",
            "Job attempts run here, by kind and outcome: done; retry (failed, tried again later); gave_up (the last "
            "allowed attempt failed: the job failed); interrupted (cut short by a shutdown, run again later).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self._webhook_deliveries = Counter(
            "recordkit_webhook_deliveries",
            "Webhook delivery attempts sent from here, by outcome: delivered, retry, failed (for good).",
            ["outcome"],
            registry=self.registry,
        )
        self._uploads = Counter(
            "recordkit_uploads",
            "Upload attempts of a recording's files, by target (builtin, or the storage_config type) and outcome "
            "(confirmed, failed).",
            ["target", "outcome"],
            registry=self.registry,
        )
        self._upload_bytes = Counter(
            "recordkit_upload_bytes",
            "Bytes of recording files stored, by target (builtin, or the storage_config type).",
            ["target"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """Every instrument in Prometheus's text format (`CONTENT_TYPE`)."""
        return bytes(generate_latest(self.registry))

    def set_recordings(self, by_state: Mapping[str, int]) -> None:
        for state, count in by_state.items():
            self._recordings.labels(state).set(count)

    def job_waited(self, kind: str, waited_s: float) -> None:
        self._queue_wait.labels(kind).observe(max(0.0, waited_s))

    def job_attempted(self, kind: str, outcome: str) -> None:
        self._job_attempts.labels(kind, outcome).inc()

    def webhook_attempted(self, status: str) -> None:
        """`status` is the delivery's after the attempt: DELIVERED, PENDING (to be retried) or FAILED."""
        self._webhook_deliveries.labels(WEBHOOK_OUTCOMES[status]).inc()

    def upload_attempted(self, target: str, succeeded: bool) -> None:
        self._uploads.labels(target, "confirmed" if succeeded else "failed").inc()

    def upload_stored(self, target: str, size: int) -> None:
        self._upload_bytes.labels(target).inc(size)

    def frame_written(self, rendered_s: float, behind_s: float) -> None:
        self._encode_seconds.inc(rendered_s)
        self._capture_lag.observe(max(0.0, behind_s))

    def frames_dropped(self, stage: str, count: int) -> None:
        self._frames_dropped.labels(stage).inc(count)

    def recorder_cpu(self, stage: str, seconds: float) -> None:
        self._recorder_cpu.labels(stage).inc(seconds)


class RecorderMeter:
    """What one composite recorder reports after each output frame. Its dropped-frame counts and CPU seconds are
    running totals over the recording; the meter adds what is new since the last report."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._dropped: dict[str, float] = {}
        self._cpu_s: dict[str, float] = {}

    def frame(
        self,
        rendered_s: float,
        behind_s: float,
        skipped: int,
        dropped: Mapping[str, int],
        cpu_s: Mapping[str, float] | None = None,
    ) -> None:
        """One output frame took `rendered_s` in the worker and was written `behind_s` late; `skipped` frames
        before the next one will not be rendered. `cpu_s`: the worker's CPU seconds per stage so far."""
        self._metrics.frame_written(rendered_s, behind_s)
        if skipped > 0:
            self._metrics.frames_dropped("skipped", skipped)
        for stage, new in _increments(dropped, self._dropped):
            self._metrics.frames_dropped(stage, int(new))
        for stage, added_s in _increments(cpu_s or {}, self._cpu_s):
            self._metrics.recorder_cpu(stage, added_s)


def _increments(totals: Mapping[str, float], reported: dict[str, float]) -> list[tuple[str, float]]:
    """What each running total in `totals` gained since `reported`, which is brought up to date (gains only)."""
    gained = []
    for name, total in totals.items():
        added = total - reported.get(name, 0)
        if added > 0:
            gained.append((name, added))
            reported[name] = total
    return gained
