"""What the RTMP output writes to its log: the server and application, never the stream key; and, for
`rtmps://`, that the server's certificate is not checked."""

from __future__ import annotations

import logging

import pytest

from recordkit.recorder.outputs.rtmp import RtmpOutput, redacted


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


def test_an_rtmps_output_says_that_the_server_s_certificate_is_not_verified(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="recordkit.recorder.outputs.rtmp")
    RtmpOutput("rtmp://127.0.0.1:1935/live/plain-key")
    assert caplog.records == []

    RtmpOutput("rtmps://live.example.org:443/app/tls-key")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert (
        record.getMessage()
        == "RTMP rtmps://live.example.org:443/app/…: encrypted, but the server's certificate is not verified"
    )
