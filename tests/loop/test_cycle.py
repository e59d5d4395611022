"""One loop cycle: policies decide on one snapshot, the governor judges, only approvals are applied."""

from __future__ import annotations

from dataclasses import dataclass, field

from kopilot.governance import audit, governor, guardrails
from kopilot.loop import cycles, worlds
from kopilot.model import actions, cluster, decisions
from tests.builders import make_service, scale, snapshot


@dataclass
class RecordingWorld:
    applied: list[actions.Action] = field(default_factory=list)

    def snapshot(self, now: float) -> cluster.ClusterSnapshot:
        return snapshot(make_service(replicas=4, max_replicas=10), time=now)

    def apply(self, action: actions.Action, now: float) -> worlds.Applied:
        self.applied.append(action)
        return worlds.Applied(ok=True)


@dataclass(frozen=True)
class AskFor:
    replicas: int

    @property
    def name(self) -> str:
        return "ask"

    def initial_state(self) -> int:
        return 0

    def decide(
        self, snap: cluster.ClusterSnapshot, state: int, now: float
    ) -> decisions.Decision[int]:
        return decisions.Decision(actions=(scale("ml/svc", self.replicas),), state=state + 1)


def test_dry_run_never_touches_the_world_but_audits_everything() -> None:
    world = RecordingWorld()
    log = audit.AuditLog(None)
    slot = cycles.PolicySlot(AskFor(6))
    gov = governor.Governor(guardrails.Guardrails(dry_run=True))
    for t in range(5):
        cycles.run_cycle(world, [slot], gov, log, float(t))
    assert world.applied == []
    assert [r["outcome"] for r in log.records] == ["dry-run"] * 5
    assert slot.state == 5


def test_refused_actions_are_recorded_with_why_and_not_applied() -> None:
    world = RecordingWorld()
    log = audit.AuditLog(None)
    gov = governor.Governor(guardrails.Guardrails(dry_run=False))
    report = cycles.run_cycle(world, [cycles.PolicySlot(AskFor(11))], gov, log, 0.0)
    assert world.applied == []
    assert report.judged[0].outcome == "refused"
    assert "outside [0, 10]" in log.records[0]["verdict"]
    cycles.run_cycle(world, [cycles.PolicySlot(AskFor(7))], gov, log, 15.0)
    assert [a.replicas for a in world.applied if isinstance(a, actions.Scale)] == [7]
