"""One cycle of the loop: sense -> decide -> govern -> act, with every verdict audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kopilot.governance import audit, governor, verdicts
from kopilot.loop import worlds
from kopilot.model import actions, decisions


@dataclass(slots=True)
class PolicySlot:
    """A policy and the state it returned last time."""

    policy: decisions.Policy[Any]
    state: Any = None

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = self.policy.initial_state()


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleReport:
    time: float
    judged: tuple[verdicts.Verdict, ...]
    failures: tuple[str, ...] = field(default_factory=tuple)

    def count(self, outcome: verdicts.Outcome) -> int:
        return sum(1 for v in self.judged if v.outcome is outcome)


def run_cycle(
    world: worlds.World,
    slots: Sequence[PolicySlot],
    gov: governor.Governor,
    log: audit.AuditLog,
    now: float,
) -> CycleReport:
    """Take one snapshot, let each policy decide on it, govern, apply what is approved, audit all."""
    snapshot = world.snapshot(now)
    proposed: list[actions.Action] = []
    for slot in slots:
        decision = slot.policy.decide(snapshot, slot.state, now)
        slot.state = decision.state
        proposed.extend(decision.actions)
    judged = gov.review(proposed, snapshot, now)
    failures: list[str] = []
    for verdict in judged:
        log.append(verdict)
        if verdict.applies:
            result = world.apply(verdict.action, now)
            if not result.ok:
                failures.append(result.detail)
    return CycleReport(time=now, judged=tuple(judged), failures=tuple(failures))
