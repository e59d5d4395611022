"""Invariants of the twins under random inputs: no node over capacity, replicas inside bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kopilot.governance import audit, governor, guardrails
from kopilot.kits import randomness
from kopilot.loop import cycles
from kopilot.model import cluster, resources, series
from kopilot.sim import clusters, runs, serving
from kopilot.traces import openb

_node = st.builds(
    lambda i, g, model: cluster.Node(
        name=f"n{i}",
        cpu_milli=32000,
        memory_mib=131072,
        gpus=tuple(cluster.Gpu(index=k, model=model) for k in range(g)),
    ),
    st.integers(0, 10_000),
    st.integers(1, 8),
    st.sampled_from(["T4", "V100M32"]),
)

_pod = st.builds(
    lambda i, cpu, mem, whole, share, spec: openb.TracePod(
        pod=cluster.Pod(
            name=f"p{i}",
            request=resources.Resources(
                cpu_milli=cpu,
                memory_mib=mem,
                gpus=whole if share == 0 else 0,
                gpu_milli=share if whole == 1 else 0,
            ),
            gpu_models=spec,
        ),
        qos="LS",
        trace_phase="Running",
        creation_time=0.0,
        deletion_time=None,
    ),
    st.integers(0, 100),
    st.integers(0, 16000),
    st.integers(0, 65536),
    st.sampled_from([1, 1, 2, 4, 8]),
    st.sampled_from([0, 0, 250, 500, 800]),
    st.sampled_from([frozenset(), frozenset({"T4"})]),
)


@settings(max_examples=40, deadline=None)
@given(
    nodes=st.lists(_node, min_size=1, max_size=12, unique_by=lambda n: n.name),
    pods=st.lists(_pod, min_size=1, max_size=30).filter(
        lambda ps: any(p.pod.request.wants_gpu for p in ps)
    ),
    placer=st.sampled_from(sorted(clusters.PLACERS)),
    seed=st.integers(0, 1000),
)
def test_no_node_is_ever_over_capacity(nodes, pods, placer, seed) -> None:
    p = clusters.PLACERS[placer](nodes, pods, randomness.rng(seed, "placement"))
    clusters.fill(nodes, pods, p, randomness.rng(seed, "t"), until=1.5)
    free = p.gpu_free_milli()
    assert len(free) == sum(len(n.gpus) for n in nodes)
    assert (free >= 0).all() and (free <= resources.GPU_MILLI).all()
    if isinstance(p, clusters.KubeDefaultPlacer):
        assert (p.cpu_free >= 0).all() and (p.mem_free >= 0).all()


def test_a_pod_list_without_gpu_pods_is_refused() -> None:
    pod = openb.TracePod(
        pod=cluster.Pod(name="cpu", request=resources.Resources(cpu_milli=1000)),
        qos="BE",
        trace_phase="Running",
        creation_time=0.0,
        deletion_time=None,
    )
    nodes = [
        cluster.Node(
            name="n", cpu_milli=1000, memory_mib=1, gpus=(cluster.Gpu(index=0, model="T4"),)
        )
    ]
    with pytest.raises(ValueError, match="no pod in the list asks for a GPU"):
        clusters.fill(nodes, [pod], clusters.KubeDefaultPlacer(nodes), randomness.rng(1, "t"))


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.floats(0, 50, allow_nan=False), min_size=5, max_size=60),
    policy=st.sampled_from(["hpa", "kopilot"]),
    lo=st.integers(0, 3),
    span=st.integers(1, 10),
)
def test_replicas_stay_inside_bounds(values, policy, lo, span) -> None:
    hi = lo + span
    spec = serving.ServiceSpec(
        name="svc",
        namespace="ml",
        capacity_rps=2.0,
        min_replicas=lo,
        max_replicas=hi,
        initial_replicas=lo,
        request=resources.Resources(gpus=1),
        startup_overhead_s=5.0,
        expected_cold_start_s=60.0,
    )
    demand = series.Series.of(np.arange(len(values)) * 60.0, values)
    world = serving.ServingWorld(spec, demand, np.array([20.0, 40.0]), randomness.rng(1, "t"))
    gov = governor.Governor(guardrails.Guardrails(dry_run=False))
    slot = cycles.PolicySlot(runs.scaling_policy(policy))
    log = audit.AuditLog(None)
    for now in np.arange(0.0, len(values) * 60.0, 15.0):
        world.account(float(now))
        cycles.run_cycle(world, [slot], gov, log, float(now))
        assert lo <= len(world.replicas) <= hi
