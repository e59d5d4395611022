"""The mig, idle and rightsizing families in the policy file: on by default, a repartition waits
for a person, the knobs reach the policies, bad knobs are refused with the field."""

from __future__ import annotations

import pytest

from kopilot.governance import governor, policyfile, verdicts
from kopilot.model import actions, errors, gpus
from kopilot.scheduling import migconfigs
from tests.builders import make_node, make_service, snapshot


def _repartition() -> actions.Repartition:
    layout = migconfigs.layout_of("A100-80GB", "all-1g.10gb")
    assert isinstance(layout, gpus.MigLayout)
    return actions.Repartition(
        node="n1", gpu_index=0, layout=layout, reason="mix", policy="scheduling/mig-repartition"
    )


def _idle_scale() -> actions.Scale:
    return actions.Scale(
        service="ml/svc", replicas=0, current=2, reason="idle", policy="cost/idle-gpus"
    )


def _judge(text: str, acts: list[actions.Action]) -> list[verdicts.Outcome]:
    rails = policyfile.parse(text, "test").rails
    snap = snapshot(make_service(replicas=2), nodes=(make_node("n1"),))
    return [v.outcome for v in governor.Governor(rails).review(acts, snap, 0.0)]


def test_a_repartition_waits_for_a_person_by_default_and_idle_scaling_does_not() -> None:
    assert _judge("dry_run: false\n", [_repartition(), _idle_scale()]) == [
        verdicts.Outcome.PENDING_APPROVAL,
        verdicts.Outcome.APPROVED,
    ]
    assert _judge(
        "dry_run: false\nfamilies: {mig: {require_approval: []}}\n", [_repartition()]
    ) == [verdicts.Outcome.APPROVED]


def test_a_switched_off_family_is_refused() -> None:
    text = "dry_run: false\nfamilies: {mig: {enabled: false}, idle: {enabled: false}}\n"
    assert _judge(text, [_repartition(), _idle_scale()]) == [verdicts.Outcome.REFUSED] * 2


def test_the_knobs_reach_the_policies() -> None:
    held = policyfile.parse(
        "families:\n  idle: {idle_for_s: 600, busy_below: 0.1, remind_s: 60}\n"
        "  rightsizing: {every_s: 120, tolerance: 0.5}\n",
        "test",
    )
    assert (held.idle.idle_for_s, held.idle.threshold, held.idle.remind_s) == (600, 0.1, 60)
    assert (held.rightsizing.every_s, held.rightsizing.tolerance) == (120, 0.5)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("families: {idle: {busy_below: 2}}", "busy_below"),
        ("families: {rightsizing: {every_s: -1}}", "every_s"),
        ("families: {mig: {require_approval: [Reboot]}}", "Reboot"),
    ],
)
def test_bad_knobs_are_refused_with_the_field(text: str, field: str) -> None:
    with pytest.raises(errors.InvalidInputError, match=field):
        policyfile.parse(text, "test")
