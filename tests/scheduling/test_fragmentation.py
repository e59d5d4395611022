"""FGD's fragmentation, computed by hand on small nodes, and kept per task shape."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kopilot.scheduling import filters, fragmentation, state
from tests.scheduling.builders import node, pod

WHOLE = fragmentation.TaskShape(
    milli=1000, count=1, cpu_milli=8000, memory_mib=0, models=frozenset(), popularity=0.5
)
HALF = fragmentation.TaskShape(
    milli=500, count=1, cpu_milli=4000, memory_mib=0, models=frozenset(), popularity=0.5
)


def frag_of(cluster: state.ClusterState) -> fragmentation.Fragmentation:
    return fragmentation.Fragmentation(cluster, fragmentation.Workload(shapes=(WHOLE, HALF)))


def test_fragmentation_counts_what_each_task_shape_cannot_use() -> None:
    cl = state.ClusterState([node("n0", gpus_=2), node("n1", gpus_=2)])
    cl.assign(state.Allocation(pod="a", node=0, gpu_indices=(0,), milli_per_gpu=700))
    f = frag_of(cl)
    f.refresh()
    # GPU 0 has 300 free: a fragment for both shapes (300 < 500 and < 1000).
    assert f.frag.tolist() == [300.0, 0.0]


def test_delta_picks_the_gpu_that_grows_fragmentation_least() -> None:
    cl = state.ClusterState([node("n0", gpus_=2), node("n1", gpus_=2)])
    cl.assign(state.Allocation(pod="a", node=0, gpu_indices=(0,), milli_per_gpu=300))
    f = frag_of(cl)
    delta, gpu = f.delta(pod("x", milli=500), np.ones(2, dtype=np.bool_))
    # n0 GPU0 700 -> 200 free: before 0.5*700 (whole) = 350; after 0.5*200 + 0.5*200 = 200.
    assert delta[0] == pytest.approx(-150.0) and gpu[0] == 0
    # n1 any GPU 1000 -> 500: whole shape loses 500 x 0.5.
    assert delta[1] == pytest.approx(250.0)


def test_a_node_without_cpu_for_a_shape_is_all_fragment_for_it() -> None:
    cl = state.ClusterState([node("n0", gpus_=1, cpu=6000)])
    f = frag_of(cl)
    f.refresh()
    assert f.frag.tolist() == [500.0]  # the whole shape needs 8000m CPU: its 0.5 x 1000


def test_stranding_counts_gpus_the_free_cpu_cannot_feed() -> None:
    cl = state.ClusterState([node("n0", gpus_=2, cpu=20_000)])
    plain = frag_of(cl)
    strand = fragmentation.Fragmentation(
        cl, fragmentation.Workload(shapes=(WHOLE, HALF)), stranding=1.0
    )
    cpu_pod = pod("cpu", cpu=12_000)
    d_plain, _ = plain.delta(cpu_pod, np.ones(1, dtype=np.bool_))
    d_strand, _ = strand.delta(cpu_pod, np.ones(1, dtype=np.bool_))
    assert d_plain[0] == 0.0  # 8000m left still hosts every shape
    assert d_strand[0] > 0.0  # but cannot feed both idle GPUs at the workload's CPU per GPU


def test_remnant_term_keeps_a_share_out_of_a_hole_the_next_share_would_fill() -> None:
    # A 530-milli hole beside a 470 is filled by the next 470 (60 left); a 320 put there leaves
    # 210 that nothing in the workload fills. FGD alone takes the hole (fragmentation 318 -> 210);
    # with the remnant term the 320 opens the idle GPU (680 left: two more 320s, 40 for good).
    def share(milli: int, popularity: float) -> fragmentation.TaskShape:
        return fragmentation.TaskShape(
            milli=milli,
            count=1,
            cpu_milli=1000,
            memory_mib=0,
            models=frozenset(),
            popularity=popularity,
        )

    workload = fragmentation.Workload(shapes=(share(1000, 0.6), share(470, 0.3), share(320, 0.1)))
    cl = state.ClusterState([node("n0", gpus_=2)])
    cl.assign(state.Allocation(pod="a", node=0, gpu_indices=(0,), milli_per_gpu=470))
    one = np.ones(1, dtype=np.bool_)
    plain = fragmentation.Fragmentation(cl, workload)
    aware = fragmentation.Fragmentation(cl, workload, remnant=8.0)
    _, fgd_gpu = plain.delta(pod("x", milli=320), one)
    delta, gpu = aware.delta(pod("x", milli=320), one)
    assert fgd_gpu[0] == 0
    assert gpu[0] == 1
    assert delta[0] == pytest.approx(0.6 * 680 + 8.0 * 40)


def _shares(cpu_470: int) -> fragmentation.Workload:
    def share(milli: int, cpu: int, popularity: float) -> fragmentation.TaskShape:
        return fragmentation.TaskShape(
            milli=milli,
            count=1,
            cpu_milli=cpu,
            memory_mib=0,
            models=frozenset(),
            popularity=popularity,
        )

    return fragmentation.Workload(
        shapes=(share(1000, 1000, 0.6), share(470, cpu_470, 0.3), share(320, 1000, 0.1))
    )


def test_a_share_fills_a_hole_whose_filler_its_cpu_would_starve_anyway() -> None:
    # As above, but the node keeps 10 vCPU and the 320 takes 4: the 470s that would fill the
    # 530 hole need 8, so after the 320 the hole lasts as 210 (one 320) on either GPU. Opening
    # GPU 1 leaves 210 + 40 (two 320s in 680) for good, filling the hole 210: the hole wins.
    cl = state.ClusterState([node("n0", gpus_=2, cpu=18_000)])
    cl.assign(
        state.Allocation(pod="a", node=0, gpu_indices=(0,), milli_per_gpu=470, cpu_milli=8000)
    )
    aware = fragmentation.Fragmentation(cl, _shares(cpu_470=8000), remnant=8.0)
    delta, gpu = aware.delta(pod("x", milli=320, cpu=4000), np.ones(1, dtype=np.bool_))
    assert gpu[0] == 0
    # fragmentation 318 -> 0.6 x 210 + 0.3 x 1210 (no CPU for a 470) + 0.1 x 210 = 510;
    # lasting remnant 60 -> 210
    assert delta[0] == pytest.approx(510 - 318 + 8.0 * (210 - 60))


def test_a_cpu_only_pod_pays_for_the_hole_its_cpu_starves() -> None:
    # Two nodes with a 530 hole beside a 470; a 6 vCPU pod leaves n0 4 vCPU, too few for the
    # 470 (8 vCPU) that would fill its hole to 60: the hole lasts 530 - 320 = 210 there.
    cl = state.ClusterState([node("n0", gpus_=1, cpu=18_000), node("n1", gpus_=1, cpu=40_000)])
    for i in (0, 1):
        cl.assign(
            state.Allocation(
                pod=f"a{i}", node=i, gpu_indices=(0,), milli_per_gpu=470, cpu_milli=8000
            )
        )
    workload = _shares(cpu_470=8000)
    both = np.ones(2, dtype=np.bool_)
    cpu_pod = pod("cpu", cpu=6000)
    plain, _ = fragmentation.Fragmentation(cl, workload).delta(cpu_pod, both)
    aware, _ = fragmentation.Fragmentation(cl, workload, remnant=8.0).delta(cpu_pod, both)
    assert (aware - plain).tolist() == pytest.approx([8.0 * (210 - 60), 0.0])


def test_reserve_keeps_flexible_pods_off_a_model_only_constrained_pods_can_use() -> None:
    cl = state.ClusterState([node("t4", gpus_=2, model="T4"), node("g2", gpus_=2, model="G2")])
    t4_only = fragmentation.TaskShape(
        milli=1000, count=1, cpu_milli=1000, memory_mib=0, models=frozenset({"T4"}), popularity=0.5
    )
    free = fragmentation.TaskShape(
        milli=1000, count=1, cpu_milli=1000, memory_mib=0, models=frozenset(), popularity=0.5
    )
    workload = fragmentation.Workload(shapes=(t4_only, free))
    pressure = fragmentation.model_pressure(cl, workload)
    assert pressure[cl.model_index["T4"]] > pressure[cl.model_index["G2"]]
    f = fragmentation.Fragmentation(cl, workload, reserve=1.0)
    everywhere = np.ones(2, dtype=np.bool_)
    flexible, _ = f.delta(pod("flex", gpus_=1), everywhere)
    assert flexible[0] > flexible[1]  # the T4 node costs more for a pod that may go anywhere
    plain = fragmentation.Fragmentation(cl, workload)
    only_t4 = np.array([True, False])
    pinned, _ = f.delta(pod("pinned", gpus_=1, models="T4"), only_t4)
    unreserved, _ = plain.delta(pod("pinned", gpus_=1, models="T4"), only_t4)
    assert pinned[0] == unreserved[0]  # a pod with no choice pays no reserve cost


def test_stranding_is_off_when_the_workload_needs_more_cpu_per_gpu_than_the_cluster_has() -> None:
    cl = state.ClusterState([node("n0", gpus_=2, cpu=20_000)])  # 10 CPU per GPU
    light = fragmentation.workload_from([pod("a", cpu=4000, gpus_=1)])
    heavy = fragmentation.workload_from([pod("a", cpu=4000, gpus_=1), pod("c", cpu=30_000)])
    assert not fragmentation.cpu_oversubscribed(cl, light)
    assert fragmentation.cpu_oversubscribed(cl, heavy)
    assert fragmentation.Fragmentation(cl, light, stranding=1.0).stranding == 1.0
    assert fragmentation.Fragmentation(cl, heavy, stranding=1.0).stranding == 0.0


SHAPES = [
    pod("s", cpu=cpu, milli=milli, gpus_=gpus, models=models)
    for cpu, milli, gpus, models in [
        (4000, 300, 0, ""),
        (8000, 500, 0, "G2"),
        (2000, 0, 1, ""),
        (16_000, 0, 2, "T4"),
        (1000, 0, 0, ""),
        (4000, 700, 0, ""),
    ]
]


@settings(max_examples=60, deadline=None)
@given(
    gpus=st.lists(st.integers(0, 4), min_size=1, max_size=8),
    steps=st.lists(
        st.tuples(st.integers(0, len(SHAPES) - 1), st.integers(0, 7), st.booleans()), max_size=30
    ),
    options=st.fixed_dictionaries(
        {
            "memory": st.booleans(),
            "stranding": st.sampled_from([0.0, 1.0]),
            "reserve": st.sampled_from([0.0, 1.0]),
            "remnant": st.sampled_from([0.0, 8.0]),
        }
    ),
)
def test_delta_kept_per_shape_equals_a_fresh_computation(
    gpus: list[int], steps: list[tuple[int, int, bool]], options: dict[str, Any]
) -> None:
    # Pods come and go between the calls: the kept figures of the nodes that changed must be
    # recomputed, the others may be reused.
    nodes = [
        node(f"n{i}", gpus_=g, model="G2" if i % 2 else "T4", cpu=32_000)
        for i, g in enumerate(gpus)
    ]
    cl = state.ClusterState(nodes)
    workload = fragmentation.workload_from(SHAPES)
    kept = fragmentation.Fragmentation(cl, workload, **options)
    for k, (shape, target, place) in enumerate(steps):
        demand = SHAPES[shape]
        feasible = (
            filters.GpuFit().filter(cl, demand).passed
            & filters.GpuModel().filter(cl, demand).passed
        )
        got, got_gpu = kept.delta(demand, feasible)
        want, want_gpu = fragmentation.Fragmentation(cl, workload, **options).delta(
            demand, feasible
        )
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
        assert got_gpu.tolist() == want_gpu.tolist()
        n = target % len(nodes)
        if place and feasible[n] and cl.cpu_free[n] >= demand.cpu_milli:
            cl.assign(state.occupy(cl, dataclasses.replace(demand, pod=f"p{k}"), n))
        elif cl.allocations and not place:
            cl.release(next(iter(cl.allocations)))
