"""One cycle of the loop: sense -> decide -> govern -> act, with every verdict audited."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kopilot.governance import approvals, audit, governor, verdicts
from kopilot.loop import worlds
from kopilot.model import actions, decisions


@dataclass(slots=True)
class PolicySlot:
    """A policy and the state it returned last time."""

    policy: decisions.Policy[Any]
    state: Any = None
    family: str | None = None
    """The family it belongs to (`kopilot.governance.families`): a family switched off in the
    governor's rails is not asked to decide (its state is kept for when it is switched on)."""
    needs: frozenset[str] = frozenset()
    """Signal sources it needs (`metrics`): while the snapshot marks one `blind`, it is not asked
    to decide, and the audit log records why."""

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = self.policy.initial_state()


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleReport:
    time: float
    judged: tuple[verdicts.Verdict, ...]
    failures: tuple[str, ...] = field(default_factory=tuple)
    skipped: tuple[str, ...] = field(default_factory=tuple)
    """`<family>: <why>` for each family that needed a blind signal source this cycle."""

    def count(self, outcome: verdicts.Outcome) -> int:
        return sum(1 for v in self.judged if v.outcome is outcome)


def run_cycle(
    world: worlds.World,
    slots: Sequence[PolicySlot],
    gov: governor.Governor,
    log: audit.AuditLog,
    now: float,
    *,
    queue: approvals.ApprovalQueue | None = None,
    approval_ttl_s: float = 3600.0,
) -> CycleReport:
    """Take one snapshot, let each policy decide on it, govern, apply what is approved, audit all.

    With a `queue`, actions that need a person are queued there, and actions a person approved
    since the last cycle are applied first (if they still pass the other guardrails).
    """
    snapshot = world.snapshot(now)
    judged: list[verdicts.Verdict] = []
    failures: list[str] = []
    if queue is not None:
        proposed_here = log.proposed()
        for rid, action in queue.approved_actions(now):
            if rid not in proposed_here:
                # Approved in the queue, but this controller never proposed it: a forged request.
                why = f"approval {rid} ignored: the audit log holds no proposal with that id"
                queue.ignore(rid, why, now)
                failures.append(why)
                continue
            [verdict] = gov.review([action], snapshot, now, approved_by_person=True)
            judged.append(verdict)
            _record_and_apply(world, log, verdict, now, failures)
            queue.mark_done(rid, now)
    proposed: list[actions.Action] = []
    skipped: list[str] = []
    for slot in slots:
        family = gov.rails.families.get(slot.family or "")
        if family is not None and not family.enabled:
            continue
        blind = [
            f"{need}: {snapshot.blind[need]}" for need in sorted(slot.needs & snapshot.blind.keys())
        ]
        if blind:
            name = slot.family or slot.policy.name
            why = f"{name} did not run: its signals cannot be trusted ({'; '.join(blind)})"
            log.note_skipped(name, why, now)
            skipped.append(why)
            continue
        decision = slot.policy.decide(snapshot, slot.state, now)
        slot.state = decision.state
        proposed.extend(decision.actions)
    for first in gov.review(proposed, snapshot, now):
        verdict = first
        if first.outcome is verdicts.Outcome.PENDING_APPROVAL and queue is not None:
            rid = queue.request(first, approval_ttl_s)
            verdict = dataclasses.replace(
                first, reason=f"{first.reason}: run `kopilot approve {rid}`"
            )
        judged.append(verdict)
        _record_and_apply(world, log, verdict, now, failures)
    return CycleReport(
        time=now, judged=tuple(judged), failures=tuple(failures), skipped=tuple(skipped)
    )


def _record_and_apply(
    world: worlds.World,
    log: audit.AuditLog,
    verdict: verdicts.Verdict,
    now: float,
    failures: list[str],
) -> None:
    log.append(verdict)
    if verdict.applies:
        result = world.apply(verdict.action, now)
        if not result.ok:
            failures.append(result.detail)
