"""How this process's recorders reach a meeting's media: the room itself when this process hosts it, else the
meeting's media node over WebRTC as a hidden recorder (design.md "One process or a fleet")."""

from __future__ import annotations

from recordkit.db.models import Recording
from recordkit.meetings.media.bitstream import FrameSize
from recordkit.meetings.media.placement import MediaPlacement
from recordkit.meetings.media.plane import MediaPlane
from recordkit.meetings.media.source import MediaSource
from recordkit.meetings.media.webrtc_source import WebRTCSource
from recordkit.meetings.tokens import ParticipantTokens


class MeetingMedia:
    """Opens a `MediaSource` on a recording's meeting. `plane` is this process's media plane, None when it
    hosts no media; `placement` None when it is the only process (everything is in its plane)."""

    def __init__(
        self,
        plane: MediaPlane | None,
        placement: MediaPlacement | None,
        tokens: ParticipantTokens,
        account_id: str,
        max_frame_size: FrameSize,
    ) -> None:
        self.plane = plane
        self.placement = placement
        self.tokens = tokens
        self.account_id = account_id
        self.max_frame_size = max_frame_size

    async def open(self, recording: Recording) -> MediaSource:
        if self.placement is None:
            assert self.plane is not None
            return self.plane.open_source(recording.meeting_id)
        room = await self.placement.place(recording.meeting_id)
        if self.plane is not None and room.node_id == self.placement.me:
            return self.plane.open_source(recording.meeting_id)
        token = self.tokens.issue_recorder(self.account_id, recording.app_id, recording.meeting_id, recording.id)
        return await WebRTCSource.join(room.url, recording.meeting_id, token, max_frame_size=self.max_frame_size)
