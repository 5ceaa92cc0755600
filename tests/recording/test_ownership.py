"""What an owner does about its recording's row (recording/ownership.py: `decide`, `owner_is_live`)."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

import pytest

from recordkit.db.models import Recording
from recordkit.node import is_dead, new_node_id
from recordkit.recording.ownership import PAUSED, RECORDING, STOPPED, Action, decide, owner_is_live

ME = new_node_id()
OTHER = "elsewhere.example:4242:cafe"
AT = datetime(2026, 12, 7, 10, 0, 0)
API_STOP = {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}}


def row(status: str, owner: str | None = ME, wanted: str | None = None, **fields: Any) -> Recording:
    return Recording(
        id="r", status=status, owner_id=owner, wanted_state=wanted, wanted_at=AT if wanted else None, **fields
    )


@pytest.mark.parametrize(
    ("recording", "doing", "action"),
    [
        (row("INVOKED"), RECORDING, Action.NOTHING),
        (row("RECORDING"), RECORDING, Action.NOTHING),
        (row("PAUSED", wanted=PAUSED), RECORDING, Action.PAUSE),
        (row("PAUSED", wanted=PAUSED), PAUSED, Action.NOTHING),  # applied already
        (row("RECORDING", wanted=RECORDING), PAUSED, Action.RESUME),
        (row("RECORDING", wanted=RECORDING), RECORDING, Action.NOTHING),
        (row("RECORDING", wanted=STOPPED, wanted_reason=API_STOP), RECORDING, Action.STOP),
        (row("PAUSED", wanted=STOPPED, wanted_reason=API_STOP), PAUSED, Action.STOP),
        (row("ERRORED", owner=None, wanted=STOPPED), RECORDING, Action.LET_GO),  # stopped while INVOKED
        (row("UPLOADING", owner=None), RECORDING, Action.LET_GO),  # recovered by the reconciler
        (row("RECORDING", owner=OTHER), RECORDING, Action.LET_GO),  # our claim lapsed and was taken over
    ],
)
def test_the_owner_applies_what_the_row_asks(recording: Recording, doing: str, action: Action) -> None:
    decision = decide(recording, ME, doing)
    assert decision.action is action
    if action in (Action.PAUSE, Action.RESUME, Action.STOP):
        assert decision.at == AT, "applied at the instant it was asked, not when heard of"
    if action is Action.STOP:
        assert decision.reason == API_STOP


def test_a_claim_lives_while_its_lease_runs_and_its_process_may_live() -> None:
    now = AT
    running = row("RECORDING", owner=OTHER, lease_expires_at=now + timedelta(seconds=5))
    lapsed = row("RECORDING", owner=OTHER, lease_expires_at=now - timedelta(seconds=1))
    unclaimed = row("RECORDING", owner=None)
    assert owner_is_live(running, ME, now)
    assert not owner_is_live(lapsed, ME, now)
    assert not owner_is_live(unclaimed, ME, now)


def test_a_process_of_this_host_that_is_gone_is_dead_at_once() -> None:
    host = socket.gethostname()
    gone = f"{host}:{2**22 + 12345}:0001"  # beyond pid_max: no such process
    assert is_dead(gone, ME)
    assert is_dead(f"{host}:{os.getpid()}:older", ME), "our own pid under an older nonce: our previous life"
    assert not is_dead(ME, ME)
    assert not is_dead(f"{host}:1:0001", ME), "pid 1 runs"
    assert not is_dead(OTHER, ME), "another host: only its lease tells"
    lease = AT + timedelta(seconds=8)
    assert not owner_is_live(row("RECORDING", owner=gone, lease_expires_at=lease), ME, AT)
