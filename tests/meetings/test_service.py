"""A meeting's recording_config as level 2 of recordings.md §8: secrets come back only for recordings."""

from __future__ import annotations

from recordkit.db.models import Meeting
from recordkit.meetings.service import recording_level
from recordkit.storage.secrets import SecretBox

BOX = SecretBox("test-key")


def test_recording_level_puts_the_sealed_secrets_back_into_storage_config() -> None:
    public = {"max_seconds": 120, "storage_config": {"type": "aws", "bucket": "b", "region": "r"}}
    meeting = Meeting(recording_config=public, recording_secrets=BOX.seal({"access_key": "k", "secret": "s"}))
    assert recording_level(meeting, BOX) == {
        "max_seconds": 120,
        "storage_config": {"type": "aws", "bucket": "b", "region": "r", "access_key": "k", "secret": "s"},
    }
    assert "access_key" not in public["storage_config"]


def test_recording_level_of_a_meeting_without_config_or_storage() -> None:
    assert recording_level(Meeting(recording_config=None, recording_secrets=None), BOX) == {}
    no_storage = {"storage_config": None, "realtimekit_bucket_config": {"enabled": True}}
    assert recording_level(Meeting(recording_config=no_storage, recording_secrets=None), BOX) == no_storage
