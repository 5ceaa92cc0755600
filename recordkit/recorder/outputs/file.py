"""Spool files: the containers a recording's files are written in, crash-safe (recordings.md §9.3).

* MP4/M4A are fragmented (`empty_moov`: the header comes first and never changes; each fragment is
  self-contained). Video fragments start at keyframes, one per second (GOP of 30 at 30 fps).
* WebM clusters are limited to one second; a cluster reaches the file when it is complete.
* MP3 frames and Ogg pages are playable as they stand.
* `flush_packets` hands every completed fragment, cluster or page to the OS at once, so a kill (which loses
  only the process, not the page cache) leaves it in the file.
"""

from __future__ import annotations

from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

from recordkit.recorder.plan import Container

_FRAGMENTED_MP4 = "empty_moov+default_base_moof"
_MUXERS: dict[Container, tuple[str, dict[str, str]]] = {
    Container.MP4: ("mp4", {"movflags": f"frag_keyframe+{_FRAGMENTED_MP4}", "frag_duration": "1000000"}),
    # Audio packets are all keyframes, so an audio-only file is cut by duration alone.
    Container.M4A: ("ipod", {"movflags": _FRAGMENTED_MP4, "frag_duration": "1000000"}),
    Container.WEBM: ("webm", {"cluster_time_limit": "1000"}),
    Container.MP3: ("mp3", {}),
    Container.OGG: ("ogg", {"page_duration": "1000000"}),
}


def open_spool_file(container: Container, path: Path) -> OutputContainer:
    """A spool file's container, opened for writing; its header is written by `start_encoding()`."""
    muxer, options = _MUXERS[container]
    return av.open(str(path), "w", format=muxer, options={**options, "flush_packets": "1"})


class FileOutput:
    """The composite's spool file: a recording output (media time, nothing while paused)."""

    live = False
    keyframe_wanted = False

    def __init__(self, container: Container, path: Path) -> None:
        self.name = path.name
        self._kind = container
        self._path = path
        self._container: OutputContainer | None = None

    def open(self, video: VideoStream, audio: AudioStream) -> None:
        self._container = open_spool_file(self._kind, self._path)
        self._video = self._container.add_stream_from_template(video)
        self._audio = self._container.add_stream_from_template(audio)
        self._container.start_encoding()  # the header is on disk from here on

    def write_video(self, packet: av.Packet, wall_s: float) -> None:
        packet.stream = self._video
        self._mux(packet)

    def write_audio(self, packet: av.Packet) -> None:
        packet.stream = self._audio
        self._mux(packet)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()

    def _mux(self, packet: av.Packet) -> None:
        assert self._container is not None
        self._container.mux(packet)
