"""What the governor decided about one action, and why."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kopilot.model import actions


class Outcome(enum.StrEnum):
    APPROVED = "approved"
    """Passed every guardrail and will be applied."""
    DRY_RUN = "dry-run"
    """Passed every guardrail; recorded, not applied, because dry-run is on."""
    REFUSED = "refused"
    """Stopped by a guardrail (the reason names which)."""
    PENDING_APPROVAL = "pending-approval"
    """Waits for a person."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    action: actions.Action
    outcome: Outcome
    reason: str
    time: float

    @property
    def applies(self) -> bool:
        return self.outcome is Outcome.APPROVED
