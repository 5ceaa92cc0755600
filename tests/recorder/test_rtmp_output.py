"""What the RTMP output writes to its log: the server and application, never the stream key."""

from __future__ import annotations

import pytest

from recordkit.recorder.outputs.rtmp import redacted


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl", "rtmp://a.rtmp.youtube.com/live2/…"),
        ("rtmps://live.example.org:443/app/key?token=1", "rtmps://live.example.org:443/app/…"),
        ("rtmp://user:pass@10.0.0.5:1935/live/secret", "rtmp://10.0.0.5:1935/live/…"),
        ("rtmp://10.0.0.5/secret", "rtmp://10.0.0.5/…"),
    ],
)
def test_the_stream_key_and_credentials_are_left_out(url: str, shown: str) -> None:
    assert redacted(url) == shown
