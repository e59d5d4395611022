"""Actions that need a person wait in a queue, are approved by `kopilot approve`, then still pass the rails."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from typer.testing import CliRunner

from kopilot.cli import app
from kopilot.governance import approvals, audit, governor, guardrails
from kopilot.loop import cycles, worlds
from kopilot.model import actions, cluster, decisions
from tests.builders import make_node, snapshot


@dataclass
class NodeWorld:
    applied: list[actions.Action] = field(default_factory=list)

    def snapshot(self, now: float) -> cluster.ClusterSnapshot:
        return snapshot(nodes=(make_node("gpu-1"), make_node("gpu-2")), time=now)

    def apply(self, action: actions.Action, now: float) -> worlds.Applied:
        self.applied.append(action)
        return worlds.Applied(ok=True)


@dataclass(frozen=True)
class CordonOnce:
    node: str

    @property
    def name(self) -> str:
        return "health"

    def initial_state(self) -> bool:
        return False

    def decide(
        self, snap: cluster.ClusterSnapshot, done: bool, now: float
    ) -> decisions.Decision[bool]:
        acts = () if done else (actions.Cordon(node=self.node, reason="XID errors rising"),)
        return decisions.Decision(actions=acts, state=True)


def test_request_approve_apply_round_trip(tmp_path: Path) -> None:
    queue_path = tmp_path / "approvals.jsonl"
    q = approvals.ApprovalQueue(queue_path)
    rails = guardrails.Guardrails(dry_run=False, require_approval=frozenset({"Cordon"}))
    gov = governor.Governor(rails)
    log = audit.AuditLog(tmp_path / "audit.jsonl")
    world = NodeWorld()
    slot = cycles.PolicySlot(CordonOnce("gpu-1"))
    t0 = time.time()  # `kopilot approve` judges expiry by the wall clock, as the controller does
    cycles.run_cycle(world, [slot], gov, log, t0, queue=q)
    assert world.applied == []
    [req] = q.requests(t0).values()
    assert req.state == "pending"
    assert f"kopilot approve {req.id}" in log.records[-1]["verdict"]

    runner = CliRunner()
    listed = runner.invoke(app, ["approve", "--queue", str(queue_path)])
    assert listed.exit_code == 0 and req.id in listed.output
    result = runner.invoke(app, ["approve", req.id, "--queue", str(queue_path), "--by", "alice"])
    assert result.exit_code == 0, result.output
    assert "approved" in result.output

    cycles.run_cycle(world, [slot], gov, log, t0 + 30.0, queue=q)
    assert [a.node for a in world.applied if isinstance(a, actions.Cordon)] == ["gpu-1"]
    assert q.requests(t0 + 30.0)[req.id].state == "done"
    again = runner.invoke(app, ["approve", req.id, "--queue", str(queue_path)])
    assert again.exit_code == 2 and "already done" in again.output


def test_unanswered_requests_expire(tmp_path: Path) -> None:
    q = approvals.ApprovalQueue(tmp_path / "q.jsonl")
    gov = governor.Governor(
        guardrails.Guardrails(dry_run=False, require_approval=frozenset({"Cordon"}))
    )
    [v] = gov.review(
        [actions.Cordon(node="gpu-1", reason="x")], snapshot(nodes=(make_node("gpu-1"),)), 0.0
    )
    rid = q.request(v, ttl_s=60.0)
    assert q.requests(30.0)[rid].state == "pending"
    assert q.requests(61.0)[rid].state == "expired"
    assert q.approved_actions(61.0) == []


def test_approval_does_not_bypass_the_blast_radius(tmp_path: Path) -> None:
    rails = guardrails.Guardrails(dry_run=False, max_cordoned_nodes=0)
    gov = governor.Governor(rails)
    [v] = gov.review(
        [actions.Cordon(node="gpu-1", reason="x")],
        snapshot(nodes=(make_node("gpu-1"),)),
        0.0,
        approved_by_person=True,
    )
    assert v.outcome == "refused" and "blast radius" in v.reason


def test_audit_command_filters_and_reports_torn_records(tmp_path: Path) -> None:
    from kopilot.governance import verdicts

    path = tmp_path / "audit.jsonl"
    log = audit.AuditLog(path)
    for i, outcome in enumerate([verdicts.Outcome.APPROVED, verdicts.Outcome.REFUSED]):
        log.append(
            verdicts.Verdict(
                action=actions.Cordon(node=f"n{i}", reason="r"),
                outcome=outcome,
                reason="why",
                time=i,
            )
        )
    with path.open("ab") as f:
        f.write(b'{"seq": 3, "tim')
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "--log", str(path), "--outcome", "refused", "--json"])
    assert result.exit_code == 0, result.output
    lines = [x for x in result.output.splitlines() if x.startswith("{")]
    assert len(lines) == 1 and '"n1"' in lines[0]
    assert "torn record" in result.output
    missing = runner.invoke(app, ["audit", "--log", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "no audit log" in missing.output
