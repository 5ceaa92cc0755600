"""The weighted capture budget (`CaptureSlots`): composites weigh four track recordings, first come first served."""

from __future__ import annotations

import asyncio

import pytest

from recordkit.recording.capacity import COMPOSITE_UNITS, TRACK_UNITS, CaptureSlots


async def hold(slots: CaptureSlots, units: int, started: list[str], name: str, release: asyncio.Event) -> None:
    async with slots.held(units):
        started.append(name)
        await release.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_composite_or_four_track_recordings_fit_a_budget_of_one() -> None:
    slots = CaptureSlots(max_recordings=1)
    started: list[str] = []
    release = asyncio.Event()
    tracks = [asyncio.create_task(hold(slots, TRACK_UNITS, started, f"t{i}", release)) for i in range(4)]
    composite = asyncio.create_task(hold(slots, COMPOSITE_UNITS, started, "c", release))
    await settle()
    assert started == ["t0", "t1", "t2", "t3"], "four track recordings capture at once; the composite waits"
    release.set()
    await asyncio.gather(*tracks, composite)
    assert started[-1] == "c" and slots.used == 0


async def test_a_waiting_composite_is_not_passed_by_track_recordings_arriving_later() -> None:
    slots = CaptureSlots(max_recordings=1)
    started: list[str] = []
    first, rest = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(hold(slots, TRACK_UNITS, started, "t0", first))
    composite = asyncio.create_task(hold(slots, COMPOSITE_UNITS, started, "c", rest))
    await settle()
    late = asyncio.create_task(hold(slots, TRACK_UNITS, started, "t1", rest))
    await settle()
    assert started == ["t0"], "three units are free, but the composite came first and needs four"
    first.set()
    await settle()
    assert started == ["t0", "c"]
    rest.set()
    await asyncio.gather(running, composite, late)
    assert started == ["t0", "c", "t1"] and slots.used == 0


async def test_a_cancelled_wait_gives_its_place_up_and_lets_those_behind_it_in() -> None:
    slots = CaptureSlots(max_recordings=1)
    started: list[str] = []
    release = asyncio.Event()
    running = asyncio.create_task(hold(slots, TRACK_UNITS, started, "t0", release))
    composite = asyncio.create_task(hold(slots, COMPOSITE_UNITS, started, "c", release))
    await settle()
    behind = asyncio.create_task(hold(slots, TRACK_UNITS, started, "t1", release))
    await settle()
    composite.cancel()
    await settle()
    assert started == ["t0", "t1"], "the cancelled composite no longer holds the line"
    release.set()
    await asyncio.gather(running, behind)
    with pytest.raises(asyncio.CancelledError):
        await composite
    assert slots.used == 0
