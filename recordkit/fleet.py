"""The fleet as its database shows it (`recordkit status`): the processes sharing the database, the recordings
each one holds, and the job queue.

Every running process writes its own `nodes` row every `BEAT_EVERY_S` (`Heartbeat`): its role, address and how
much of its capture budget is in use, so the load shown is what each process last said of itself. What a
process holds comes from the recording rows it owns (`owner_id`, recording/ownership.py), so a process that
stopped beating still shows with the recordings its lease covers until another takes them over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from recordkit.clock import utcnow
from recordkit.db.engine import Database
from recordkit.db.models import MediaRoom, Node, QueuedJob, Recording
from recordkit.jobs.kinds import describe
from recordkit.recording.capacity import COMPOSITE_UNITS, TRACK_UNITS, CaptureSlots
from recordkit.recording.lifecycle import ACTIVE, Status

log = logging.getLogger(__name__)

BEAT_EVERY_S = 5.0
# A row older than this belongs to a process that stopped beating: killed, hung, or cut off from the database.
SILENT_AFTER = timedelta(seconds=3 * BEAT_EVERY_S)
# The rows of processes silent this long are deleted by any process that beats.
FORGOTTEN_AFTER = timedelta(hours=1)

_PROCRASTINATE_QUEUE = text(
    "SELECT task_name, status::text, count(*) FROM procrastinate_jobs"
    " WHERE status IN ('todo', 'doing') GROUP BY task_name, status"
)


class Heartbeat:
    """This process's `nodes` row: written at start and every `BEAT_EVERY_S`, deleted when it stops cleanly."""

    def __init__(
        self, db: Database, node_id: str, role: str, url: str, slots: CaptureSlots, media_address: str | None = None
    ) -> None:
        self.db = db
        self.node_id = node_id
        self.role = role
        self.url = url
        self.slots = slots
        # A media node registers where its media flows (placement.py finds media nodes by these rows).
        self.media_address = media_address
        self.started_at = utcnow()

    async def beat(self) -> None:
        now = utcnow()
        values = {
            "role": self.role,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "url": self.url,
            "capacity_used": self.slots.used,
            "capacity_total": self.slots.capacity,
            "started_at": self.started_at,
            "last_seen_at": now,
            "media_address": self.media_address,
        }
        async with self.db.write() as session:
            # Only this process writes its row: no other writer can insert it between the update and the insert.
            updated = await session.execute(update(Node).where(Node.id == self.node_id).values(**values))
            if not updated.rowcount:  # type: ignore[attr-defined]
                session.add(Node(id=self.node_id, **values))
            await session.execute(delete(Node).where(Node.last_seen_at < now - FORGOTTEN_AFTER))

    async def beat_forever(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception:
                log.exception("writing this process's heartbeat failed; trying again")
            await asyncio.sleep(BEAT_EVERY_S)

    async def leave(self) -> None:
        """Delete our row: a process that stopped cleanly is no longer part of the fleet."""
        try:
            async with self.db.write() as session:
                await session.execute(delete(Node).where(Node.id == self.node_id))
        except Exception:
            log.exception("could not delete this process's heartbeat; it is forgotten once old")


async def recorders_elsewhere(db: Database, excluding: set[str]) -> int:
    """How many live processes other than `excluding` record (a worker, or a process doing everything, with a
    capture budget): whether a recording can go on elsewhere when its own worker stops."""
    async with db.read() as session:
        count = await session.scalar(
            select(func.count()).where(
                Node.last_seen_at > utcnow() - SILENT_AFTER,
                Node.id.not_in(excluding),
                Node.role.in_(("worker", "all")),
                Node.capacity_total > 0,
            )
        )
    return count or 0


@dataclass(frozen=True)
class Held:
    """A recording a process holds: claimed (INVOKED) or capturing, since when, and until when its lease runs."""

    recording_id: str
    status: str
    since: datetime
    lease_expires_at: datetime | None


@dataclass(frozen=True)
class Fleet:
    at: datetime
    nodes: list[Node]
    # By owner id, owners without a heartbeat row included.
    held: dict[str, list[Held]]
    # (job kind, todo | doing) → how many.
    jobs: dict[tuple[str, str], int]
    recordings: dict[str, int]
    # Meetings' rooms placed on each media node (placement.py).
    rooms: dict[str, int]


class FleetUnreadable(Exception):
    """The database is missing, unreachable, or older than the `nodes` table."""


def fleet_status(database_url: str) -> str:
    """The fleet of the database at `database_url`, as the text `recordkit status` prints. Blocking: it runs
    its own event loop."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        # Opening it would create an empty database.
        raise FleetUnreadable(f"no database at {url.database}")
    return asyncio.run(_fleet_status(database_url))


async def _fleet_status(database_url: str) -> str:
    db = Database(database_url)
    try:
        fleet = await read_fleet(db)
    except (SQLAlchemyError, OSError) as error:
        raise FleetUnreadable(f"cannot read the fleet ({describe(error)}); is the schema up to date?") from None
    finally:
        await db.close()
    return render(fleet)


async def read_fleet(db: Database) -> Fleet:
    at = utcnow()
    async with db.read() as session:
        nodes = list((await session.execute(select(Node).order_by(Node.started_at, Node.id))).scalars())
        rows = await session.execute(
            select(
                Recording.owner_id,
                Recording.id,
                Recording.status,
                Recording.invoked_time,
                Recording.started_time,
                Recording.paused_at,
                Recording.lease_expires_at,
            )
            .where(Recording.owner_id.is_not(None), Recording.status.in_([status.value for status in ACTIVE]))
            .order_by(Recording.invoked_time)
        )
        held: dict[str, list[Held]] = defaultdict(list)
        for owner, rid, status, invoked, started, paused, lease in rows:
            since = {Status.RECORDING.value: started, Status.PAUSED.value: paused}.get(status) or invoked
            held[owner].append(Held(rid, status, since, lease))
        if db.is_sqlite:
            queue = select(QueuedJob.kind, QueuedJob.status, func.count()).where(
                QueuedJob.status.in_(("todo", "doing"))
            )
            jobs_rows = await session.execute(queue.group_by(QueuedJob.kind, QueuedJob.status))
        else:
            jobs_rows = await session.execute(_PROCRASTINATE_QUEUE)
        jobs = {(kind, status): count for kind, status, count in jobs_rows}
        placed = await session.execute(select(MediaRoom.node_id, func.count()).group_by(MediaRoom.node_id))
        rooms = dict(placed.tuples().all())
    return Fleet(at, nodes, dict(held), jobs, await recordings_by_status(db), rooms)


async def recordings_by_status(db: Database) -> dict[str, int]:
    """How many recordings are in each state, every state named (0 when none)."""
    async with db.read() as session:
        rows = await session.execute(select(Recording.status, func.count()).group_by(Recording.status))
        counts = dict(rows.tuples().all())
    return {status.value: counts.get(status.value, 0) for status in Status}


def render(fleet: Fleet) -> str:
    """The fleet as aligned text tables: nodes, the recordings they hold, the job queue, recordings by state."""
    at = fleet.at
    node_rows = [
        [
            node.id,
            node.role,
            node.url,
            node.media_address or "-",
            str(fleet.rooms.get(node.id, 0)) if node.media_address else "-",
            f"{node.capacity_used}/{node.capacity_total}",
            str(len(fleet.held.get(node.id, []))),
            _moment(node.started_at),
            f"{_span(at - node.last_seen_at)} ago" + (" (silent)" if at - node.last_seen_at > SILENT_AFTER else ""),
        ]
        for node in fleet.nodes
    ]
    # An owner without a heartbeat row: silent for over an hour, or a process from before heartbeats existed.
    known = {node.id for node in fleet.nodes}
    for owner in sorted(set(fleet.held) - known):
        node_rows.append([owner, "-", "-", "-", "-", "-", str(len(fleet.held[owner])), "-", "no heartbeat"])
    held_rows = [
        [owner, held.recording_id, held.status, f"{_moment(held.since)} ({_span(at - held.since)})", _lease(at, held)]
        for owner, holding in sorted(fleet.held.items())
        for held in holding
    ]
    job_rows = [
        [kind, str(fleet.jobs.get((kind, "todo"), 0)), str(fleet.jobs.get((kind, "doing"), 0))]
        for kind in sorted({kind for kind, _ in fleet.jobs})
    ]
    units = f"a composite recording {COMPOSITE_UNITS}, a track recording {TRACK_UNITS}"
    lines = [
        f"recordkit fleet at {_moment(at)}",
        "",
        f"NODES (media: where a media node's peers send media, and the meetings' rooms it hosts; load: capture "
        f"units in use / budget; {units})",
        *_table(
            ["NODE", "ROLE", "URL", "MEDIA", "ROOMS", "LOAD", "HOLDS", "STARTED", "LAST SEEN"],
            node_rows,
            "no process is running",
        ),
        "",
        "RECORDINGS HELD",
        *_table(["NODE", "RECORDING", "STATE", "SINCE", "LEASE"], held_rows, "none"),
        "",
        "JOB QUEUE",
        *_table(["KIND", "TODO", "DOING"], job_rows, "empty"),
        "",
        "RECORDINGS BY STATE  " + "  ".join(f"{state} {count}" for state, count in fleet.recordings.items()),
    ]
    return "\n".join(lines) + "\n"


def _table(headers: list[str], rows: list[list[str]], empty: str) -> list[str]:
    if not rows:
        return [f"  ({empty})"]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ([cell.ljust(width) for cell, width in zip(row, widths, strict=True)] for row in [headers, *rows])
    return ["  ".join(cells).rstrip() for cells in lines]


def _lease(at: datetime, held: Held) -> str:
    if held.lease_expires_at is None:
        return "-"
    left = held.lease_expires_at - at
    return f"{_span(left)} left" if left > timedelta(0) else f"expired {_span(-left)} ago"


def _moment(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _span(span: timedelta) -> str:
    seconds = max(0, round(span.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
