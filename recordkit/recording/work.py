"""What a job handler is given: the parts of this process it may use, built once by app.py."""

from __future__ import annotations

from dataclasses import dataclass

from recordkit.config import Settings
from recordkit.metrics import Metrics
from recordkit.recorder.composite import RecorderSettings
from recordkit.recording.capacity import CaptureSlots
from recordkit.recording.ownership import Recorders
from recordkit.recording.reports import CaptureReports
from recordkit.recording.sources import MeetingMedia
from recordkit.storage.bucket import LocalBucket
from recordkit.storage.secrets import SecretBox
from recordkit.storage.store import UploadSettings


@dataclass(frozen=True)
class WorkContext:
    """The database (through `reports`), this process's recorders, capture budget and way to meetings' media,
    the built-in bucket, the settings and the metrics."""

    reports: CaptureReports
    recorders: Recorders
    sources: MeetingMedia
    bucket: LocalBucket
    settings: Settings
    recorder_settings: RecorderSettings
    capture_slots: CaptureSlots
    # Opens a recording's sealed storage secrets, for the upload to its external store.
    secrets: SecretBox
    upload_settings: UploadSettings
    metrics: Metrics
