"""The policy file's `families:` section: each family switched on or off and bounded; disruptive
health actions wait for a person by default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from kopilot.governance import audit, governor, policyfile, verdicts
from kopilot.loop import cycles, worlds
from kopilot.model import actions, cluster, decisions, errors
from tests.builders import make_node, make_service, scale, snapshot


def _restart(pod: str = "ml/svc-1") -> actions.Restart:
    return actions.Restart(pod=pod, service="ml/svc", reason="leak", policy="health.playbooks")


def _cordon(node: str, policy: str) -> actions.Cordon:
    return actions.Cordon(node=node, drain=True, reason="xid", policy=policy)


def _judge(text: str, acts: list[actions.Action]) -> list[verdicts.Verdict]:
    rails = policyfile.parse(text, "test").rails
    snap = snapshot(make_service(replicas=8), nodes=(make_node("n1"), make_node("n2")))
    return governor.Governor(rails).review(acts, snap, 0.0)


def test_without_a_section_every_family_is_on_and_health_disruption_needs_approval() -> None:
    rails = policyfile.parse("", "test").rails
    assert {n: f.enabled for n, f in rails.families.items()} == {
        "scaling": True,
        "readiness": True,
        "health": True,
        "mig": True,
        "idle": True,
        "rightsizing": True,
    }
    out = _judge(
        "dry_run: false\n",
        [_restart(), _cordon("n1", "health.playbooks"), _cordon("n2", "node-readiness")],
    )
    assert [v.outcome for v in out] == [
        verdicts.Outcome.PENDING_APPROVAL,
        verdicts.Outcome.PENDING_APPROVAL,
        verdicts.Outcome.APPROVED,  # readiness stays as it was: no approval by default
    ]


def test_an_empty_approval_list_lets_health_act_alone() -> None:
    [v] = _judge("dry_run: false\nfamilies: {health: {require_approval: []}}\n", [_restart()])
    assert v.outcome is verdicts.Outcome.APPROVED


def test_a_switched_off_family_is_refused_with_the_reason() -> None:
    [v, w] = _judge(
        "dry_run: false\nfamilies: {health: {enabled: false}}\n",
        [_restart(), scale("ml/svc", 5)],
    )
    assert v.outcome is verdicts.Outcome.REFUSED
    assert "family health is switched off" in v.reason
    assert w.outcome is verdicts.Outcome.APPROVED


def test_a_family_bound_counts_its_own_actions_only() -> None:
    text = "dry_run: false\nfamilies: {health: {max_actions: 2, require_approval: []}}\n"
    out = _judge(
        text,
        [_restart("ml/a"), _restart("ml/b"), scale("ml/svc", 5), _restart("ml/c")],
    )
    assert [v.outcome for v in out] == [
        verdicts.Outcome.APPROVED,
        verdicts.Outcome.APPROVED,
        verdicts.Outcome.APPROVED,
        verdicts.Outcome.REFUSED,
    ]
    assert "family limit: 2 health actions" in out[-1].reason


def test_health_knobs_reach_the_detector_settings() -> None:
    p = policyfile.parse(
        "families: {health: {leak_horizon_s: 600, xid_count: 5, xid_window_s: 300}}\n", "t"
    )
    assert (p.health.leak_horizon_s, p.health.xid_count, p.health.xid_window_s) == (600, 5, 300)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("families: {heal: {enabled: true}}\n", "families.heal"),
        ("families: {health: {require_approval: [Nuke]}}\n", "families.health.require_approval"),
        ("families: {health: {max_actions: -1}}\n", "families.health.max_actions"),
        ("families: {scaling: {leak_horizon_s: 5}}\n", "families.scaling.leak_horizon_s"),
        ("families: {health: {xid_count: 0}}\n", "families.health.xid_count"),
    ],
)
def test_bad_family_fields_are_named(text: str, field: str) -> None:
    with pytest.raises(errors.InvalidInputError, match=field.replace(".", r"\.")):
        policyfile.parse(text, "test")


@dataclass(frozen=True)
class Counting:
    """A policy that counts how often it was asked to decide."""

    @property
    def name(self) -> str:
        return "health.playbooks"

    def initial_state(self) -> int:
        return 0

    def decide(
        self, snap: cluster.ClusterSnapshot, state: int, now: float
    ) -> decisions.Decision[int]:
        return decisions.Decision(actions=(), state=state + 1)


class StillWorld:
    def snapshot(self, now: float) -> cluster.ClusterSnapshot:
        return snapshot(make_service(), time=now)

    def apply(self, action: actions.Action, now: float) -> worlds.Applied:
        return worlds.Applied(ok=True)


def test_a_switched_off_family_is_not_asked_and_keeps_its_state() -> None:
    slot = cycles.PolicySlot(Counting(), family="health")
    gov = governor.Governor(policyfile.parse("", "t").rails)
    log = audit.AuditLog(None)
    cycles.run_cycle(StillWorld(), [slot], gov, log, 0.0)
    gov.rails = policyfile.parse("families: {health: {enabled: false}}\n", "t").rails
    cycles.run_cycle(StillWorld(), [slot], gov, log, 1.0)
    assert slot.state == 1
    gov.rails = policyfile.parse("families: {health: {enabled: true}}\n", "t").rails
    cycles.run_cycle(StillWorld(), [slot], gov, log, 2.0)
    assert slot.state == 2


class BlindWorld:
    """A world whose metrics source failed this cycle."""

    def snapshot(self, now: float) -> cluster.ClusterSnapshot:
        return cluster.ClusterSnapshot(
            time=now, blind={cluster.METRICS: "Prometheus unreachable or timed out"}
        )

    def apply(self, action: actions.Action, now: float) -> worlds.Applied:
        return worlds.Applied(ok=True)


def test_a_family_whose_signals_are_blind_does_not_run_and_the_audit_log_says_why() -> None:
    needs = cycles.PolicySlot(Counting(), family="health", needs=frozenset({cluster.METRICS}))
    free = cycles.PolicySlot(Counting(), family="scaling")
    log = audit.AuditLog(None)
    gov = governor.Governor(policyfile.parse("", "t").rails)
    report = cycles.run_cycle(BlindWorld(), [needs, free], gov, log, 5.0)
    assert (needs.state, free.state) == (0, 1)
    [rec] = log.records
    assert rec["outcome"] == audit.SKIPPED and rec["family"] == "health"
    assert "Prometheus unreachable" in rec["verdict"]
    assert report.skipped == (rec["verdict"],)
    cycles.run_cycle(StillWorld(), [needs, free], gov, log, 6.0)
    assert needs.state == 1 and len(log.records) == 1


def test_kopilot_policy_shows_each_family_and_what_it_asks_approval_for(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kopilot.cli import app as cli

    path = tmp_path / "policy.yaml"
    path.write_text("families: {health: {max_actions: 3}, scaling: {enabled: false}}\n")
    result = CliRunner().invoke(cli, ["policy", str(path)])
    assert result.exit_code == 0, result.output
    assert "family scaling: off" in result.output
    assert "family health: on, max 3 per window, needs approval=['Cordon', 'Restart']" in (
        result.output
    )


def test_a_family_bound_holds_across_a_restart_through_the_audit_log() -> None:
    from kopilot.kube import resuming

    rails = policyfile.parse(
        "dry_run: false\nfamilies: {health: {max_actions: 1, require_approval: []}}\n", "t"
    ).rails
    snap = snapshot(make_service(replicas=8))
    log = audit.AuditLog(None)
    for v in governor.Governor(rails).review([_restart("ml/a")], snap, 0.0):
        log.append(v)
    restarted = governor.Governor(rails)
    restarted.remember(resuming.ledger_entries(log.records))
    [v] = restarted.review([_restart("ml/b")], snap, 10.0)
    assert v.outcome is verdicts.Outcome.REFUSED and "family limit" in v.reason
