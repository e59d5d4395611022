"""The NotReady policy cordons nodes that stay NotReady past the grace period, and uncordons
the ones it cordoned once they are healthy again; the governor bounds how many."""

from __future__ import annotations

from kopilot.governance import governor, guardrails, verdicts
from kopilot.health import readiness
from kopilot.model import actions, cluster


def node(name: str, *, ready: bool = True, cordoned: bool = False) -> cluster.Node:
    return cluster.Node(
        name=name, cpu_milli=1000, memory_mib=1024, ready=ready, unschedulable=cordoned
    )


def snap(t: float, *nodes: cluster.Node) -> cluster.ClusterSnapshot:
    return cluster.ClusterSnapshot(time=t, nodes=nodes)


def test_cordons_only_after_the_grace_period() -> None:
    policy = readiness.ReadinessPolicy(grace_s=60.0)
    state = policy.initial_state()
    d = policy.decide(snap(0, node("a", ready=False), node("b")), state, 0.0)
    assert d.actions == ()
    d = policy.decide(snap(30, node("a", ready=False), node("b")), d.state, 30.0)
    assert d.actions == ()
    d = policy.decide(snap(60, node("a", ready=False), node("b")), d.state, 60.0)
    [action] = d.actions
    assert isinstance(action, actions.Cordon) and action.node == "a" and not action.uncordon
    assert "NotReady for 60 s" in action.reason
    assert action.policy == readiness.POLICY


def test_a_node_that_recovers_within_grace_is_left_alone() -> None:
    policy = readiness.ReadinessPolicy(grace_s=60.0)
    d = policy.decide(snap(0, node("a", ready=False)), policy.initial_state(), 0.0)
    d = policy.decide(snap(30, node("a")), d.state, 30.0)
    d = policy.decide(snap(70, node("a", ready=False)), d.state, 70.0)
    assert d.actions == ()  # the NotReady clock restarted at 70


def test_uncordons_what_it_cordoned_once_ready_again_but_not_others() -> None:
    policy = readiness.ReadinessPolicy(grace_s=10.0)
    d = policy.decide(
        snap(0, node("a", ready=False), node("b", cordoned=True)), policy.initial_state(), 0.0
    )
    d = policy.decide(snap(10, node("a", ready=False), node("b", cordoned=True)), d.state, 10.0)
    assert [a.node for a in d.actions if isinstance(a, actions.Cordon)] == ["a"]
    d = policy.decide(snap(20, node("a", cordoned=True), node("b", cordoned=True)), d.state, 20.0)
    assert d.actions == ()
    d = policy.decide(snap(30, node("a", cordoned=True), node("b", cordoned=True)), d.state, 30.0)
    [action] = d.actions
    assert isinstance(action, actions.Cordon) and action.uncordon and action.node == "a"


def test_the_governor_caps_the_cordons_at_the_blast_radius() -> None:
    policy = readiness.ReadinessPolicy(grace_s=0.0)
    nodes = [node(f"n{i}", ready=False) for i in range(5)]
    d = policy.decide(snap(0, *nodes), policy.initial_state(), 0.0)
    assert len(d.actions) == 5
    gov = governor.Governor(guardrails.Guardrails(dry_run=False, max_cordoned_nodes=2))
    judged = gov.review(d.actions, snap(0, *nodes), 0.0)
    assert [v.outcome for v in judged].count(verdicts.Outcome.APPROVED) == 2
    assert all("blast radius" in v.reason for v in judged[2:])
