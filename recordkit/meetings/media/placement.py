"""Which media node hosts a meeting's room (issue 14: "a meeting's session lives on one media node, chosen when
it starts").

A media node registers itself through its heartbeat (`fleet.Heartbeat`: its URL, whose `/meet` routes are its
signalling, and its media address). The first connection to a meeting — a participant's offer or a recorder
joining — places the room: on the asking node when it hosts media, else on the live media node holding the fewest
rooms. The choice is a `media_rooms` row, so every process finds the same node; it stands while that node beats
and is made again once the node has gone silent (its peers then have to join again anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from recordkit.clock import utcnow
from recordkit.db.engine import Database
from recordkit.db.models import MediaRoom, Node
from recordkit.fleet import SILENT_AFTER
from recordkit.roles import MEDIA


class NoMediaNode(Exception):
    """No live process of the fleet hosts media: nobody can join, and no recorder can listen."""

    def __init__(self) -> None:
        super().__init__("no media node is running (start one with `recordkit serve --role media`)")


@dataclass(frozen=True)
class Placed:
    node_id: str
    url: str


class MediaPlacement:
    """Places meetings' rooms on media nodes. `me` is this process (`url` None when it hosts no media)."""

    def __init__(self, db: Database, me: str, url: str | None) -> None:
        self.db = db
        self.me = me
        self.url = url

    async def place(self, meeting_id: str) -> Placed:
        """The node hosting the meeting's room, choosing one when none live does."""
        for _ in range(2):  # a second try only after losing the race to insert the row
            try:
                return await self._place(meeting_id)
            except IntegrityError:
                continue
        return await self._place(meeting_id)

    async def _place(self, meeting_id: str) -> Placed:
        now = utcnow()
        async with self.db.write() as session:
            live = {
                node.id: node
                for node in (
                    await session.execute(select(Node).where(Node.last_seen_at > now - SILENT_AFTER))
                ).scalars()
                if MEDIA in node.role.split(",") or node.role == "all"
            }
            room = await session.get(MediaRoom, meeting_id, with_for_update=True)
            if room is not None and (room.node_id in live or room.node_id == self.me):
                return Placed(room.node_id, room.url)
            chosen = Placed(self.me, self.url) if self.url is not None else await self._least_loaded(live)
            if room is None:
                session.add(MediaRoom(meeting_id=meeting_id, node_id=chosen.node_id, url=chosen.url, since=now))
            else:
                room.node_id, room.url, room.since = chosen.node_id, chosen.url, now
        return chosen

    async def _least_loaded(self, live: dict[str, Node]) -> Placed:
        if not live:
            raise NoMediaNode
        async with self.db.read() as session:
            rows = await session.execute(
                select(MediaRoom.node_id, func.count()).where(MediaRoom.node_id.in_(live)).group_by(MediaRoom.node_id)
            )
            rooms = dict(rows.tuples().all())
        node = min(live.values(), key=lambda node: (rooms.get(node.id, 0), node.id))
        return Placed(node.id, node.url)
