"""Profiles place whole GPUs, GPU shares, MIG slices and model-constrained pods, and explain."""

from __future__ import annotations

import pytest

from kopilot.kits import randomness
from kopilot.model import actions, gpus
from kopilot.scheduling import framework, placing, profiles, state
from tests.scheduling.builders import node, pod

WORKLOAD = profiles.workload_of(
    [pod("a", gpus_=1), pod("b", milli=500), pod("c", milli=250), pod("d", gpus_=4)]
)


def scheduler(nodes: list, name: str = "kopilot") -> placing.Scheduler:  # type: ignore[type-arg]
    return placing.Scheduler(
        state.ClusterState(nodes),
        profiles.named(name, workload=WORKLOAD),
        randomness.rng(1, "test"),
    )


@pytest.mark.parametrize("name", profiles.NAMES)
def test_every_profile_places_shares_on_one_gpu_and_whole_gpus_on_idle_ones(name: str) -> None:
    s = scheduler([node("n1", gpus_=2), node("n2", gpus_=2)], name)
    first = s.schedule(pod("share", milli=600))
    assert isinstance(first, framework.Placement)
    assert len(first.allocation.gpu_indices) == 1
    whole = s.schedule(pod("whole", gpus_=2))
    assert isinstance(whole, framework.Placement)
    assert whole.node != first.node  # the only node with two idle GPUs
    assert s.state.allocation_ratio() == pytest.approx((600 + 2000) / 4000)


def test_fgd_packs_a_share_next_to_a_partly_used_gpu() -> None:
    s = scheduler([node("n1", gpus_=2), node("n2", gpus_=2)], "fgd")
    a = s.schedule(pod("a", milli=500))
    b = s.schedule(pod("b", milli=500))
    assert isinstance(a, framework.Placement) and isinstance(b, framework.Placement)
    assert (a.node, a.allocation.gpu_indices) == (b.node, b.allocation.gpu_indices)


@pytest.mark.parametrize(("name", "gpu"), [("fgd", 0), ("kopilot", 1)])
def test_kopilot_keeps_a_share_out_of_a_hole_that_the_next_share_fills(name: str, gpu: int) -> None:
    # 470s pair up (60 left). A 320 in a 470's 530-milli hole leaves 210 that no share of the
    # workload fills; FGD puts it there, kopilot opens the idle GPU (two more 320s fill it to 40).
    pods = [pod(f"w{i}", gpus_=1) for i in range(6)]
    pods += [pod(f"h{i}", milli=470) for i in range(3)] + [pod("t", milli=320)]
    s = placing.Scheduler(
        state.ClusterState([node("n1", gpus_=2)]),
        profiles.named(name, workload=profiles.workload_of(pods)),
        randomness.rng(1, "test"),
    )
    first = s.schedule(pod("first", milli=470))
    assert isinstance(first, framework.Placement)
    second = s.schedule(pod("second", milli=320))
    assert isinstance(second, framework.Placement)
    assert (first.allocation.gpu_indices, second.allocation.gpu_indices) == ((0,), (gpu,))


def test_unschedulable_says_why_like_kube_scheduler() -> None:
    s = scheduler([node("n1", gpus_=2, cpu=4000), node("n2", gpus_=1, model="T4")])
    decision = s.schedule(pod("big", gpus_=2, cpu=8000, models="G2"))
    assert isinstance(decision, framework.Unschedulable)
    assert decision.status.code is framework.Code.UNSCHEDULABLE
    assert decision.reason() == (
        "0/2 nodes are available: 1 node(s) didn't have the GPU model (G2) or MIG profile "
        "asked for, 1 Insufficient cpu."
    )
    wrong_model = s.schedule(pod("v100", gpus_=1, models="V100M16"))
    assert isinstance(wrong_model, framework.Unschedulable)
    assert wrong_model.status.code is framework.Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert s.state.allocations == {}


def test_a_placement_becomes_a_bind_action_with_reasons_and_evidence() -> None:
    s = scheduler([node("n1", gpus_=2)])
    decision = s.schedule(pod("p", milli=300))
    assert isinstance(decision, framework.Placement)
    bind = placing.to_bind(decision)
    assert isinstance(bind, actions.Bind)
    assert bind.node == "n1" and len(bind.gpu_indices) == 1
    assert "FragmentationAndStranding" in bind.reason
    assert bind.evidence["gpu_milli_per_gpu"] == 300


def test_explain_records_every_plugin_on_every_node() -> None:
    s = scheduler([node("n1", gpus_=1, cpu=500), node("n2", gpus_=1)])
    decision = placing.decide(s.state, pod("p", gpus_=1), s.profile, s.rng, explain=True)
    assert isinstance(decision, framework.Placement) and decision.table is not None
    why = decision.table.why("n1")
    assert "filter CpuFit: FAIL (Insufficient cpu)" in why
    assert any(
        line.startswith("score FragmentationAndStranding") for line in decision.table.why("n2")
    )


def test_mig_slices_are_placed_only_where_the_layout_has_them() -> None:
    a100 = gpus.model_named("A100-80GB")
    layout = gpus.pack_profiles(a100, ["3g.40gb", "2g.20gb", "2g.20gb"])
    assert layout is not None
    s = scheduler([node("plain", gpus_=1), node("mig", gpus_=1, model="A100-80GB", mig=[layout])])
    ok = s.schedule(pod("m1", mig="2g.20gb"))
    assert isinstance(ok, framework.Placement) and ok.node == "mig"
    assert ok.allocation.mig_profile == "2g.20gb"
    s.schedule(pod("m2", mig="2g.20gb"))
    third = s.schedule(pod("m3", mig="2g.20gb"))
    assert isinstance(third, framework.Unschedulable)
    assert "Insufficient nvidia.com/mig-2g.20gb" in third.reason()
    assert s.schedule(pod("m4", mig="3g.40gb")).placed


def test_time_sliced_node_hands_out_replicas_and_refuses_more_than_one() -> None:
    sliced = node("ts", gpus_=1, labels={state.LABEL_REPLICAS: "4"})
    s = scheduler([sliced])
    placed = [s.schedule(pod(f"r{i}", gpus_=1)) for i in range(5)]
    assert [p.placed for p in placed] == [True, True, True, True, False]
    assert not s.schedule(pod("two", gpus_=2)).placed
    assert s.state.allocation_ratio() == pytest.approx(1.0)


def test_release_gives_everything_back() -> None:
    s = scheduler([node("n1", gpus_=2)])
    s.schedule(pod("p", gpus_=1, cpu=5000))
    assert s.release("default/p") is not None
    assert int(s.state.cpu_used.sum()) == 0 and int(s.state.gpu_free.sum()) == 2000
    assert s.release("default/p") is None


def test_unknown_profile_and_missing_workload_are_clear_errors() -> None:
    from kopilot.model import errors

    with pytest.raises(errors.InvalidInputError, match="choose one of"):
        profiles.named("nope")
    with pytest.raises(errors.InvalidInputError, match="workload"):
        profiles.named("fgd")
