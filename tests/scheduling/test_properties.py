"""Invariants under random pods (hypothesis): no node over capacity, no MIG layout the hardware
cannot hold, gangs all-or-nothing."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kopilot.kits import randomness
from kopilot.model import gpus
from kopilot.scheduling import demands, gangs, migplanning, placing, profiles, state
from tests.scheduling.builders import node

A100 = gpus.model_named("A100-80GB")
PROFILES = [p.name for p in A100.mig_profiles]

pods_strategy = st.lists(
    st.tuples(
        st.sampled_from(["none", "whole", "share", "mig"]),
        st.integers(0, 40_000),
        st.integers(1, 8),
        st.integers(1, 999),
        st.sampled_from(PROFILES),
        st.sampled_from(["", "G2", "T4", "G2|T4"]),
    ),
    min_size=1,
    max_size=40,
)


def demand(i: int, spec: tuple[str, int, int, int, str, str]) -> demands.Demand:
    kind, cpu, count, milli, profile, models = spec
    return demands.Demand(
        pod=f"p{i}",
        cpu_milli=cpu,
        memory_mib=cpu * 2,
        gpus=count if kind == "whole" else 0,
        gpu_milli=milli if kind == "share" else 0,
        models=frozenset(m for m in models.split("|") if m),
        mig_profile=profile if kind == "mig" else None,
        mig_count=1 if kind == "mig" else 0,
    )


def small_cluster() -> state.ClusterState:
    layout = gpus.pack_profiles(A100, ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"])
    return state.ClusterState(
        [
            node("g2", gpus_=8, cpu=64_000, mem=200_000),
            node("t4", gpus_=2, model="T4", cpu=32_000, mem=100_000),
            node(
                "ts",
                gpus_=2,
                model="T4",
                cpu=16_000,
                mem=64_000,
                labels={state.LABEL_REPLICAS: "3"},
            ),
            node("a100", gpus_=2, model="A100-80GB", cpu=32_000, mem=100_000, mig=[layout, None]),
        ]
    )


def within_capacity(cl: state.ClusterState) -> None:
    assert (cl.cpu_used <= cl.cpu_cap).all() and (cl.cpu_used >= 0).all()
    assert (cl.mem_used <= cl.mem_cap).all() and (cl.mem_used >= 0).all()
    assert (cl.gpu_free >= 0).all() and (cl.gpu_free <= 1000).all()
    for (n, g), layout in cl.mig_layouts.items():
        gpus.validate_layout(gpus.model_named(layout.model), layout.slices)
        assert cl.mig_free[layout.slices[0].profile][n] >= 0
        assert not cl.gpu_real[n, g]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=pods_strategy, name=st.sampled_from(profiles.NAMES), seed=st.integers(0, 5))
def test_no_profile_ever_puts_a_node_over_capacity(
    specs: list[tuple[str, int, int, int, str, str]], name: str, seed: int
) -> None:
    cl = small_cluster()
    items = [demand(i, s) for i, s in enumerate(specs)]
    sched = placing.Scheduler(
        cl, profiles.named(name, workload=profiles.workload_of(items)), randomness.rng(seed, "t")
    )
    for d in items:
        sched.schedule(d)
        within_capacity(cl)
    for d in items[::2]:
        sched.release(d.pod)
        within_capacity(cl)


@settings(max_examples=30, deadline=None)
@given(
    mix=st.dictionaries(st.sampled_from(PROFILES), st.integers(0, 12), min_size=1),
    busy=st.booleans(),
)
def test_the_mig_planner_only_proposes_layouts_the_hardware_can_hold(
    mix: dict[str, int], busy: bool
) -> None:
    cl = small_cluster()
    if busy:
        cl.assign(state.occupy(cl, demands.Demand(pod="x", mig_profile="1g.10gb", mig_count=1), 3))
    plan = migplanning.plan(cl, mix, model="A100-80GB")
    for action in plan.actions:
        gpus.validate_layout(A100, action.layout.slices)
        cl.repartition(cl.index[action.node], action.gpu_index, action.layout)
    within_capacity(cl)
    for p, c in plan.served.items():
        assert c <= mix[p]


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4), gpus_each=st.integers(1, 4))
def test_gangs_are_all_or_nothing(sizes: list[int], gpus_each: int) -> None:
    cl = state.ClusterState([node(f"n{i}", gpus_=4) for i in range(3)])
    sched = placing.Scheduler(cl, profiles.named("bestfit"), randomness.rng(0, "gang"))
    for g, size in enumerate(sizes):
        members = [
            demands.Demand(pod=f"g{g}-{i}", gpus=gpus_each, cpu_milli=1000) for i in range(size)
        ]
        before = cl.gpu_free.copy()
        decision = gangs.schedule_gang(sched, f"g{g}", members)
        held = [m.pod for m in members if m.pod in cl.allocations]
        if decision.placed:
            assert len(held) == size
        else:
            assert held == []
            assert np.array_equal(cl.gpu_free, before)
        within_capacity(cl)
