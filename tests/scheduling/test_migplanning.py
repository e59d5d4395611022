"""The MIG planner recommends layouts that serve the demand mix, and keeps busy GPUs as they are."""

from __future__ import annotations

from kopilot.model import gpus
from kopilot.scheduling import demands, migplanning, state
from tests.scheduling.builders import node

A100 = gpus.model_named("A100-80GB")


def test_layouts_are_maximal_and_valid() -> None:
    options = migplanning.layouts("A100-80GB")
    assert any(lay.counts() == {"7g.80gb": 1} for lay in options)
    assert any(lay.counts() == {"1g.10gb": 7} for lay in options)
    for lay in options:
        gpus.validate_layout(A100, lay.slices)


def test_plan_turns_idle_gpus_into_the_slices_demanded() -> None:
    cl = state.ClusterState([node("a", gpus_=2, model="A100-80GB")])
    plan = migplanning.plan(cl, {"3g.40gb": 2, "1g.10gb": 3}, model="A100-80GB")
    assert plan.unserved == {}
    assert plan.served == {"3g.40gb": 2, "1g.10gb": 3}
    assert all(a.kind == "Repartition" and "serves" in a.reason for a in plan.actions)


def test_a_gpu_with_slices_in_use_keeps_its_layout() -> None:
    layout = gpus.pack_profiles(A100, ["1g.10gb"] * 7)
    assert layout is not None
    cl = state.ClusterState([node("a", gpus_=1, model="A100-80GB", mig=[layout])])
    cl.assign(state.occupy(cl, demands.Demand(pod="p", mig_profile="1g.10gb", mig_count=1), 0))
    plan = migplanning.plan(cl, {"7g.80gb": 1, "1g.10gb": 2}, model="A100-80GB")
    assert plan.actions == ()
    assert plan.unserved == {"7g.80gb": 1}
