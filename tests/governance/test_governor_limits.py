"""The governor: every guardrail refuses with its reason, and no action storm gets past a limit."""

from __future__ import annotations

import collections

from hypothesis import given, settings
from hypothesis import strategies as st

from kopilot.governance import governor, guardrails, verdicts
from kopilot.model import actions
from tests.builders import make_node, make_service, scale, snapshot


def _review(rails: guardrails.Guardrails, acts: list[actions.Action], snap=None, now: float = 0.0):
    gov = governor.Governor(rails)
    return gov.review(acts, snap or snapshot(make_service()), now)


def test_dry_run_is_the_default_and_applies_nothing() -> None:
    [v] = _review(guardrails.Guardrails(), [scale("ml/svc", 6)])
    assert v.outcome is verdicts.Outcome.DRY_RUN
    assert not v.applies


def test_scale_outside_bounds_is_refused_with_the_bounds() -> None:
    snap = snapshot(make_service(min_replicas=2, max_replicas=8))
    [v] = _review(guardrails.Guardrails(dry_run=False), [scale("ml/svc", 9)], snap)
    assert v.outcome is verdicts.Outcome.REFUSED
    assert "outside [2, 8]" in v.reason


def test_namespace_and_kind_allow_lists() -> None:
    rails = guardrails.Guardrails(dry_run=False, allowed_namespaces=frozenset({"prod"}))
    [v] = _review(rails, [scale("ml/svc", 5)])
    assert v.outcome is verdicts.Outcome.REFUSED and "namespace ml" in v.reason
    rails = guardrails.Guardrails(dry_run=False, allowed_kinds=frozenset({"Alert"}))
    [v] = _review(rails, [scale("ml/svc", 5)])
    assert v.outcome is verdicts.Outcome.REFUSED and "allow-list" in v.reason


def test_blast_radius_counts_nodes_already_cordoned() -> None:
    nodes = (make_node("a", unschedulable=True), make_node("b"), make_node("c"))
    snap = snapshot(make_service(), nodes=nodes)
    rails = guardrails.Guardrails(dry_run=False, max_cordoned_nodes=2, cooldown_s={})
    out = _review(rails, [actions.Cordon(node=n, reason="bad") for n in ("b", "c")], snap)
    assert [v.outcome for v in out] == [verdicts.Outcome.APPROVED, verdicts.Outcome.REFUSED]
    assert "2 nodes already cordoned" in out[1].reason


def test_restarts_limited_to_a_share_of_the_service() -> None:
    snap = snapshot(make_service(replicas=8))
    rails = guardrails.Guardrails(dry_run=False, max_disrupted_fraction=0.25, cooldown_s={})
    acts = [actions.Restart(pod=f"ml/p{i}", service="ml/svc", reason="leak") for i in range(4)]
    out = _review(rails, acts, snap)
    assert [v.outcome for v in out].count(verdicts.Outcome.APPROVED) == 2


def test_cooldown_per_target() -> None:
    rails = guardrails.Guardrails(dry_run=False, cooldown_s={"Restart": 600.0})
    gov = governor.Governor(rails)
    snap = snapshot(make_service(replicas=20))
    r = actions.Restart(pod="ml/p0", service="ml/svc", reason="x")
    assert gov.review([r], snap, 0.0)[0].applies
    second = gov.review([r], snap, 300.0)[0]
    assert second.outcome is verdicts.Outcome.REFUSED and "cool-down" in second.reason
    assert gov.review([r], snap, 700.0)[0].applies


def test_kinds_needing_approval_wait_for_a_person() -> None:
    rails = guardrails.Guardrails(dry_run=False, require_approval=frozenset({"Cordon"}))
    [v] = _review(rails, [actions.Cordon(node="a", reason="x")], snapshot(nodes=(make_node("a"),)))
    assert v.outcome is verdicts.Outcome.PENDING_APPROVAL


_action = st.one_of(
    st.builds(lambda n: actions.Cordon(node=f"n{n}", reason="storm"), st.integers(0, 9)),
    st.builds(
        lambda p: actions.Restart(pod=f"ml/p{p}", service="ml/svc", reason="storm"),
        st.integers(0, 30),
    ),
    st.builds(lambda r: scale("ml/svc", r), st.integers(0, 60)),
)


@settings(max_examples=150, deadline=None)
@given(
    storm=st.lists(st.tuples(st.floats(0, 3000), _action), max_size=80),
    max_cordoned=st.integers(0, 4),
    per_kind=st.integers(1, 10),
    fraction=st.floats(0.05, 1.0),
)
def test_no_action_storm_gets_past_any_limit(storm, max_cordoned, per_kind, fraction) -> None:
    rails = guardrails.Guardrails(
        dry_run=False,
        window_s=600.0,
        max_per_kind={"Cordon": per_kind, "Restart": per_kind, "Scale": per_kind},
        max_per_target=1000,
        cooldown_s={},
        max_cordoned_nodes=max_cordoned,
        max_disrupted_fraction=fraction,
    )
    gov = governor.Governor(rails)
    svc = make_service(replicas=20, max_replicas=50)
    snap = snapshot(svc, nodes=tuple(make_node(f"n{i}") for i in range(10)))
    approved: list[tuple[float, actions.Action]] = []
    for t, act in sorted(storm, key=lambda x: x[0]):
        for v in gov.review([act], snap, t):
            if v.applies:
                approved.append((t, v.action))
    cordoned = {a.node for _, a in approved if isinstance(a, actions.Cordon)}
    assert len(cordoned) <= max_cordoned
    for t, _ in approved:
        in_window = collections.Counter(a.kind for s, a in approved if t - 600.0 < s <= t)
        assert all(n <= per_kind for n in in_window.values())
        restarts = sum(
            1 for s, a in approved if t - 600.0 < s <= t and isinstance(a, actions.Restart)
        )
        assert restarts <= max(1, int(20 * fraction))
    assert all(
        svc.min_replicas <= a.replicas <= svc.max_replicas
        for _, a in approved
        if isinstance(a, actions.Scale)
    )
