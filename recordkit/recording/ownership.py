"""Recorders owned through the database (design.md "Ownership and control live in the database").

A recording being captured has an owner: the node id of the process whose recorder captures it, with a lease
the owner renews every `renew_every_s` and that lapses `lease_s` after the last renewal. The API never talks to
a recorder: it writes the wanted state on the row (`wanted_state`, `wanted_at`, `wanted_reason`) and
announces it on the bus; the owner reads the row and applies it (`decide`), writing what it applied — for a
stop, the end of capture itself. Each renewal also re-reads the rows, so a lost announcement only delays an
action by one renewal. A row whose claim this process lost (its lease ran out and the reconciler recovered the
recording) is let go without another write.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from recordkit.clock import utcnow
from recordkit.db.bus import CONTROL, Bus
from recordkit.db.engine import Database
from recordkit.db.models import Recording
from recordkit.fleet import recorders_elsewhere
from recordkit.jobs.dispatcher import Job
from recordkit.node import is_dead
from recordkit.recorder.capture import Capture, Finished
from recordkit.recorder.composite import Ending
from recordkit.recorder.spool import spool_dir
from recordkit.recording.lifecycle import CAPTURING, Kind, Status
from recordkit.recording.reports import CaptureReports
from recordkit.recording.rows import INTERNAL_ERROR, lock_recording
from recordkit.recording.takeover import continuable, successor_began

log = logging.getLogger(__name__)

RECORDING, PAUSED, STOPPED = "RECORDING", "PAUSED", "STOPPED"
# A draining worker waits for a successor for this share of its drain time, keeping the rest for its uploads.
HAND_OVER_SHARE = 0.6
# How long both workers capture the same instant: the successor's first frames may come late; the join cuts it.
HAND_OVER_OVERLAP_S = 0.5
HAND_OVER_POLL_S = 0.1


@dataclass(frozen=True)
class LeaseTimes:
    lease_s: float = 10.0
    renew_every_s: float = 2.0


class Action(enum.Enum):
    NOTHING = "nothing"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    LET_GO = "let go"  # no longer ours to record: stop the recorder and write nothing


@dataclass(frozen=True)
class Decision:
    action: Action
    at: datetime | None = None
    reason: dict[str, Any] | None = None


def decide(recording: Recording, me: str, doing: str) -> Decision:
    """What the owner `me`, whose recorder is `doing` RECORDING or PAUSED, must do about the row as it is."""
    status = Status(recording.status)
    if recording.owner_id != me or status not in (Status.INVOKED, *CAPTURING):
        return Decision(Action.LET_GO)
    if status is Status.INVOKED:
        return Decision(Action.NOTHING)
    wanted = recording.wanted_state
    if wanted == STOPPED:
        return Decision(Action.STOP, recording.wanted_at, recording.wanted_reason)
    if wanted == PAUSED and doing != PAUSED:
        return Decision(Action.PAUSE, recording.wanted_at)
    if wanted == RECORDING and doing == PAUSED:
        return Decision(Action.RESUME, recording.wanted_at)
    return Decision(Action.NOTHING)


def owner_is_live(recording: Recording, me: str, now: datetime) -> bool:
    """Whether some process still holds the recording: a claim whose lease runs and whose process may live."""
    owner = recording.owner_id
    if owner is None or recording.lease_expires_at is None or recording.lease_expires_at <= now:
        return False
    return not is_dead(owner, me)


def wall_s(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


@dataclass(eq=False)
class _Owned:
    recorder: Capture
    # The folder of the segment it writes when it continues a recording (takeover.py); None: the first one.
    part: Path | None = None
    doing: str = RECORDING
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Draining: capturing on until a successor captures too; the lease is left to run out meanwhile.
    handing_over: bool = False


class Recorders:
    """The recorders this process owns, and the recordings it is recovering."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        reports: CaptureReports,
        node_id: str,
        lease: LeaseTimes = LeaseTimes(),
        *,
        shared_data_dir: Path | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.reports = reports
        self.node_id = node_id
        self.lease = lease
        # Set in a fleet, whose workers share the data dir: a recording then continues on another worker when its
        # own dies or drains (takeover.py) instead of ending there.
        self.shared_data_dir = shared_data_dir
        self.draining = False
        self._owned: dict[str, _Owned] = {}
        self._recovering: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        bus.subscribe(CONTROL, self.wake)

    def owns(self, recording_id: str) -> bool:
        return recording_id in self._owned or recording_id in self._recovering

    def __len__(self) -> int:
        return len(self._owned)

    async def claim(self, recording_id: str) -> Recording | None:
        """Become the owner of an INVOKED recording; None when it is not INVOKED, or another process holds it."""
        if self.draining or recording_id in self._owned:
            return None
        now = utcnow()
        async with self.db.write() as session:
            current = await lock_recording(session, recording_id)
            if current.status != Status.INVOKED.value:
                return None
            if current.owner_id != self.node_id and owner_is_live(current, self.node_id, now):
                return None
            current.owner_id = self.node_id
            current.lease_expires_at = now + timedelta(seconds=self.lease.lease_s)
        return current

    async def claim_for_recovery(self, recording_id: str) -> Recording | None:
        """Take over a capturing recording nobody holds any more, to finish what its recorder left; None when
        it is not capturing or its owner still holds it."""
        now = utcnow()
        async with self.db.write() as session:
            current = await lock_recording(session, recording_id)
            if current.status not in (Status.RECORDING.value, Status.PAUSED.value) or self.owns(recording_id):
                return None
            if owner_is_live(current, self.node_id, now):
                return None
            current.owner_id = self.node_id
            current.lease_expires_at = now + timedelta(seconds=self.lease.lease_s)
            self._recovering.add(recording_id)
        return current

    async def claim_for_takeover(self, recording_id: str) -> Recording | None:
        """Become the owner of a capturing recording that nobody holds any more (its worker died) or that its
        worker hands over (draining), to continue it here in a new segment; None when it is not ours to take."""
        if self.draining or self.shared_data_dir is None or self.owns(recording_id):
            return None
        now = utcnow()
        async with self.db.write() as session:
            current = await lock_recording(session, recording_id)
            if current.status not in (Status.RECORDING.value, Status.PAUSED.value) or not continuable(current):
                return None
            if current.wanted_state == STOPPED or owner_is_live(current, self.node_id, now):
                return None
            current.owner_id = self.node_id
            current.lease_expires_at = now + timedelta(seconds=self.lease.lease_s)
            await self.bus.publish(session, CONTROL, recording_id)  # a worker handing it over learns at once
        return current

    def recovered(self, recording_id: str) -> None:
        self._recovering.discard(recording_id)

    async def release(self, recording_id: str) -> None:
        """Give up our claim on a recording (a recovery that failed), so any process may take it at once."""
        async with self.db.write() as session:
            await session.execute(
                update(Recording)
                .where(Recording.id == recording_id, Recording.owner_id == self.node_id)
                .values(owner_id=None, lease_expires_at=None)
            )

    async def run(
        self,
        recording_id: str,
        recorder: Capture,
        ended: Callable[[Ending], Awaitable[None]],
        part: Path | None = None,
    ) -> None:
        """Run a claimed recording's recorder until it stops, applying what the row asks of it meanwhile; if
        the recorder fails, end the recording with what it captured (`ended` with reason "error")."""
        self._owned[recording_id] = _Owned(recorder, part)
        try:
            await self.apply(recording_id)  # what was asked before the recorder was here (a stop, say)
            await recorder.run()
        except Exception:
            log.exception("recording %s: the recorder failed", recording_id)
            finished = await recorder.finish()
            await ended(Ending("error", finished, finished.captured_media))
        finally:
            self._owned.pop(recording_id, None)

    def wake(self, recording_id: str) -> None:
        """The row of `recording_id` changed: if we hold its recorder, apply what it asks now."""
        if recording_id in self._owned:
            self._spawn(self.apply(recording_id))

    async def apply(self, recording_id: str) -> None:
        owned = self._owned.get(recording_id)
        if owned is None or owned.handing_over:
            return  # a hand-over decides for itself when its recorder stops
        async with owned.lock:
            recording = await self.reports.get(recording_id)
            if recording is None:
                return
            decision = decide(recording, self.node_id, owned.doing)
            if decision.action is Action.PAUSE and decision.at is not None:
                owned.recorder.pause(wall_s(decision.at))
                owned.doing = PAUSED
                await self.reports.applied(recording_id, self.node_id, PAUSED)
            elif decision.action is Action.RESUME and decision.at is not None:
                owned.recorder.resume(wall_s(decision.at))
                owned.doing = RECORDING
                await self.reports.applied(recording_id, self.node_id, RECORDING)
            elif decision.action is Action.STOP:
                at = decision.at or utcnow()
                await self._stop(recording_id, owned.recorder, at, decision.reason or INTERNAL_ERROR)
            elif decision.action is Action.LET_GO:
                await owned.recorder.finish()

    async def renew_forever(self) -> None:
        """Renew the leases of everything we hold, and look at each row again (a missed wake-up)."""
        while True:
            await asyncio.sleep(self.lease.renew_every_s)
            try:
                await self.renew()
            except Exception:
                log.exception("renewing recorder leases failed; trying again")

    async def renew(self) -> None:
        held = [rid for rid, owned in self._owned.items() if not owned.handing_over] + list(self._recovering)
        if not held:
            return
        now = utcnow()
        async with self.db.write() as session:
            await session.execute(
                update(Recording)
                .where(Recording.id.in_(held), Recording.owner_id == self.node_id)
                .values(lease_expires_at=now + timedelta(seconds=self.lease.lease_s))
            )
        for recording_id in held:
            self.wake(recording_id)

    async def drain(self, at: datetime, timeout_s: float) -> list[str]:
        """Stop every recorder we hold at `at` (a graceful shutdown): a capturing recording ends its file there
        and moves on to UPLOADING — or, in a fleet, goes on on another worker (`_hand_over`); one still INVOKED
        is handed back to the queue. Claims nothing more. Returns the ids of the recordings whose capture ended."""
        self.draining = True
        held = list(self._owned.items())
        deadline_s = time.monotonic() + timeout_s * HAND_OVER_SHARE
        ended = await asyncio.gather(
            *(self._drain_one(rid, owned, at, deadline_s) for rid, owned in held), return_exceptions=True
        )
        for (rid, _), result in zip(held, ended, strict=True):
            if isinstance(result, BaseException):
                log.error("recording %s: stopping it for the shutdown failed", rid, exc_info=result)
        return [rid for (rid, _), result in zip(held, ended, strict=True) if result is True]

    async def _drain_one(self, recording_id: str, owned: _Owned, at: datetime, deadline_s: float) -> bool:
        async with owned.lock:
            recording = await self.reports.get(recording_id)
            if recording is None:
                return False
            decision = decide(recording, self.node_id, owned.doing)
            if decision.action is Action.LET_GO:
                await owned.recorder.finish()
                return False
            if Status(recording.status) is Status.INVOKED:
                await owned.recorder.finish()
                await self._hand_back(recording_id)
                return False
            if (
                self.shared_data_dir is not None
                and decision.action is not Action.STOP
                and continuable(recording)
                and await recorders_elsewhere(self.db, {self.node_id})
            ):
                return await self._hand_over(recording_id, owned, deadline_s)
            stop_at = min(at, decision.at) if decision.action is Action.STOP and decision.at else at
            await self._stop(recording_id, owned.recorder, stop_at, decision.reason or INTERNAL_ERROR)
            return True

    async def _hand_over(self, recording_id: str, owned: _Owned, deadline_s: float) -> bool:
        """Let another worker continue the recording, capturing on until it captures too (the overlap is cut at
        the join), so the file loses nothing to the drain; whether the capture ended here (a stop came first).
        With no successor by the deadline our segment ends and the recording waits, RECORDING, for a worker."""
        assert self.shared_data_dir is not None
        owned.handing_over = True
        async with self.db.write() as session:
            current = await lock_recording(session, recording_id)
            if current.owner_id != self.node_id:
                await owned.recorder.finish()
                return False
            current.lease_expires_at = utcnow()  # free for a successor from now on
            await self.reports.jobs.submit(session, Job("record", recording_id))
        log.info("recording %s: handing it over to another worker", recording_id)
        spool = spool_dir(self.shared_data_dir, recording_id)
        while True:
            began = await asyncio.to_thread(successor_began, spool, owned.part)
            if began is not None:
                log.info("recording %s: continued by another worker; our segment ends", recording_id)
                await owned.recorder.finish(min(time.time(), began + HAND_OVER_OVERLAP_S))
                return False
            recording = await self.reports.get(recording_id)
            if recording is None or recording.status not in (Status.RECORDING.value, Status.PAUSED.value):
                await owned.recorder.finish()
                return False
            if recording.owner_id == self.node_id and recording.wanted_state == STOPPED:
                at = recording.wanted_at or utcnow()
                await self._stop(recording_id, owned.recorder, at, recording.wanted_reason or INTERNAL_ERROR)
                return True
            if time.monotonic() > deadline_s:
                log.warning("recording %s: no worker continued it in time; it waits for one", recording_id)
                await owned.recorder.finish()
                return False
            await asyncio.sleep(HAND_OVER_POLL_S)

    async def _stop(self, recording_id: str, recorder: Capture, at: datetime, reason: dict[str, Any]) -> None:
        finished: Finished = await recorder.finish(wall_s(at))
        await self.reports.end_capture(
            recording_id,
            reason,
            file_size=finished.file_size,
            stopped_at=finished.ended_at,
            captured_media=finished.captured_media,
            owner_id=self.node_id,
        )

    async def _hand_back(self, recording_id: str) -> None:
        """Release a recording we claimed but never started, with a new record job so another process (or
        this one after its restart) starts it."""
        async with self.db.write() as session:
            current = await lock_recording(session, recording_id)
            if current.status != Status.INVOKED.value or current.owner_id != self.node_id:
                return
            current.owner_id = None
            current.lease_expires_at = None
            kind = "record" if current.type == Kind.COMPOSITE.value else "record_tracks"
            await self.reports.jobs.submit(session, Job(kind, recording_id))

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
