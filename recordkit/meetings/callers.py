"""Who acted (recordings.md §2): the operator's API token or a participant, as recordings remember it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recordkit.db.models import Participant


@dataclass(frozen=True)
class Caller:
    """The authenticated caller. `participant` is set for participant tokens only."""

    participant: Participant | None = None

    @property
    def is_participant(self) -> bool:
        return self.participant is not None

    def wire(self) -> dict[str, Any]:
        """The `caller` object of start_reason/stop_reason (§5.2)."""
        if self.participant is None:
            return {"type": "ORGANIZATION"}
        return {"type": "USER", "user_Id": self.participant.id, "name": self.participant.name}
