"""The live rightsizing family recommends what `kopilot advise` would, on the workload, without
repeating itself, and never from too little history."""

from __future__ import annotations

import numpy as np

from kopilot.cost import idle, resizing, rightsizing
from kopilot.model import actions, cluster, resources, series

NOW = 100_000.0


def usage(level: float, *, points: int = 400, noise: float = 0.02, seed: int = 0) -> series.Series:
    rng = np.random.default_rng(seed)
    t = NOW - 15.0 * np.arange(points)[::-1]
    return series.Series.of(t, level * (1 + noise * rng.standard_normal(points)))


def service(cpu_milli: int = 4000, memory_mib: int = 8192) -> cluster.ModelService:
    return cluster.ModelService(
        name="svc",
        namespace="ml",
        replicas=2,
        ready_replicas=2,
        capacity_rps=10.0,
        cold_start_s=60.0,
        request=resources.Resources(cpu_milli=cpu_milli, memory_mib=memory_mib),
    )


def pod(name: str) -> cluster.Pod:
    return cluster.Pod(
        name=name, namespace="ml", node="n1", phase=cluster.PodPhase.RUNNING, service="ml/svc"
    )


def snap(svc: cluster.ModelService, points: int = 400) -> cluster.ClusterSnapshot:
    metrics = {}
    for i, name in enumerate(("a", "b")):
        metrics[f"pod/ml/{name}/cpu_cores"] = usage(0.5, points=points, seed=i)
        metrics[f"pod/ml/{name}/memory_mib"] = usage(1024.0, points=points, seed=10 + i)
    return cluster.ClusterSnapshot(
        time=NOW, services=(svc,), pods=(pod("a"), pod("b")), metrics=metrics
    )


def decide(
    s: cluster.ClusterSnapshot, prior: resizing.SizingState | None = None, now: float = NOW
) -> tuple[list[actions.Action], resizing.SizingState]:
    policy = resizing.RightsizingPolicy()
    d = policy.decide(s, prior or policy.initial_state(), now)
    return list(d.actions), d.state


def test_oversized_requests_get_the_same_recommendation_advise_computes() -> None:
    s = snap(service())
    out, _ = decide(s)
    assert {a.resource for a in out if isinstance(a, actions.Recommend)} == {
        "pod/cpu",
        "pod/memory",
    }
    assert all(a.target == "service/ml/svc" and a.policy == "cost/rightsizing" for a in out)
    history = resizing.history_of(service(), [pod("a"), pod("b")], s.metrics)
    rec = rightsizing.Kopilot().recommend(history)
    same = idle.oversized(rec, cpu_request=4.0, memory_request=8192 * resizing.MIB, gpus=0.0)
    assert sorted((a.resource, a.recommended) for a in out if isinstance(a, actions.Recommend)) == (
        sorted((a.resource, a.recommended) for a in same)
    )


def test_a_recommendation_is_not_repeated_until_it_is_due() -> None:
    s = snap(service())
    first, after = decide(s)
    assert first
    assert decide(s, after, NOW + 60)[0] == []
    assert len(decide(s, after, NOW + 7 * 3600)[0]) == len(first)


def test_requests_close_to_usage_and_thin_history_give_nothing() -> None:
    assert decide(snap(service(cpu_milli=600, memory_mib=1300)))[0] == []
    assert decide(snap(service(), points=20))[0] == []


def test_a_large_cluster_is_judged_a_few_services_per_decision_oldest_first() -> None:
    services, pods, metrics = [], [], {}
    for i in range(3):
        svc = service()
        svc = cluster.ModelService(
            **{**{f: getattr(svc, f) for f in svc.__slots__}, "name": f"s{i}"}
        )
        services.append(svc)
        p = cluster.Pod(
            name=f"p{i}", namespace="ml", node="n1", phase=cluster.PodPhase.RUNNING, service=svc.key
        )
        pods.append(p)
        metrics[f"pod/ml/p{i}/cpu_cores"] = usage(0.5, seed=i)
        metrics[f"pod/ml/p{i}/memory_mib"] = usage(1024.0, seed=10 + i)
    s = cluster.ClusterSnapshot(
        time=NOW, services=tuple(services), pods=tuple(pods), metrics=metrics
    )
    policy = resizing.RightsizingPolicy(per_cycle=2, recheck_s=600)
    first = policy.decide(s, policy.initial_state(), NOW)
    assert {a.target for a in first.actions} == {"service/ml/s0", "service/ml/s1"}
    second = policy.decide(s, first.state, NOW + 15)
    assert {a.target for a in second.actions} == {"service/ml/s2"}
    assert policy.decide(s, second.state, NOW + 30).actions == ()
