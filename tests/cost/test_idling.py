"""The live idle-GPU family scales idle services to zero when their minimum allows it, recommends
it otherwise, prices the waste, and never judges a service it cannot see."""

from __future__ import annotations

import numpy as np

from kopilot.cost import idling, prices
from kopilot.model import actions, cluster, resources, series
from tests.builders import make_node, make_service

NOW = 10_000.0
STEP = 15.0


def flat(level: float, *, start: float = NOW - 7200, end: float = NOW) -> series.Series:
    t = np.arange(start, end + 1e-9, STEP)
    return series.Series.of(t, np.full(len(t), level))


def gpu_pod(name: str, node: str = "n1", service: str = "ml/svc", gpus: int = 1) -> cluster.Pod:
    return cluster.Pod(
        name=name,
        namespace="ml",
        request=resources.Resources(cpu_milli=1000, memory_mib=1024, gpus=gpus),
        node=node,
        phase=cluster.PodPhase.RUNNING,
        service=service,
    )


def snap(
    *,
    services: tuple[cluster.ModelService, ...],
    pods: tuple[cluster.Pod, ...],
    metrics: dict[str, series.Series],
    demand: dict[str, series.Series] | None = None,
) -> cluster.ClusterSnapshot:
    return cluster.ClusterSnapshot(
        time=NOW,
        nodes=(make_node("n1", gpus=2), make_node("n2", gpus=2)),
        services=services,
        pods=pods,
        metrics=metrics,
        demand=demand or {},
    )


def decide(
    s: cluster.ClusterSnapshot, prior: idling.IdleState | None = None, now: float = NOW
) -> tuple[list[actions.Action], idling.IdleState]:
    policy = idling.IdlePolicy(book=prices.PriceBook(gpu_models={"A100-80GB": 3.0}))
    d = policy.decide(s, prior or policy.initial_state(), now)
    return list(d.actions), d.state


IDLE_GPUS = {"gpu/n1/0/utilization": flat(0.01), "gpu/n1/1/utilization": flat(0.0)}


def test_an_idle_service_whose_min_allows_it_is_scaled_to_zero_with_the_waste_priced() -> None:
    svc = make_service("svc", replicas=2, min_replicas=0)
    s = snap(services=(svc,), pods=(gpu_pod("a"), gpu_pod("b")), metrics=IDLE_GPUS)
    [action], _ = decide(s)
    assert isinstance(action, actions.Scale)
    assert (action.service, action.replicas, action.current) == ("ml/svc", 0, 2)
    assert action.evidence["idle_s"] == 7200.0
    assert action.evidence["gpu_hours"] == 4.0  # 2 GPUs x 2 h
    assert action.evidence["cost"] == 12.0  # x 3.00 per A100-80GB hour


def test_a_minimum_above_zero_gets_a_recommendation_once_per_reminder() -> None:
    svc = make_service("svc", replicas=2, min_replicas=1)
    s = snap(services=(svc,), pods=(gpu_pod("a"), gpu_pod("b")), metrics=IDLE_GPUS)
    [action], after = decide(s)
    assert isinstance(action, actions.Recommend)
    assert action.subject == "service/ml/svc" and action.recommended == 0
    assert "min replicas (1)" in action.reason
    again, _ = decide(s, after, NOW + 60)
    assert again == []


def test_a_busy_gpu_or_a_served_request_means_not_idle() -> None:
    svc = make_service("svc", replicas=1, min_replicas=0)
    busy = {**IDLE_GPUS, "gpu/n1/1/utilization": flat(0.4)}
    assert decide(snap(services=(svc,), pods=(gpu_pod("a"),), metrics=busy))[0] == []
    t = np.arange(NOW - 7200, NOW + 1, STEP)
    served = series.Series.of(t, np.where(t > NOW - 600, 0.5, 0.0))
    s = snap(services=(svc,), pods=(gpu_pod("a"),), metrics=IDLE_GPUS, demand={"ml/svc": served})
    assert decide(s)[0] == []


def test_idle_for_less_than_the_window_is_not_idle() -> None:
    t = np.arange(NOW - 7200, NOW + 1, STEP)
    recent = series.Series.of(t, np.where(t < NOW - 1800, 0.9, 0.0))
    assert idling.idle_for(recent, threshold=0.05, now=NOW, stale_s=300) == 1800.0
    svc = make_service("svc", replicas=1, min_replicas=0)
    metrics = {"gpu/n1/0/utilization": recent, "gpu/n1/1/utilization": recent}
    assert decide(snap(services=(svc,), pods=(gpu_pod("a"),), metrics=metrics))[0] == []


def test_a_node_without_gpu_metrics_is_said_once_and_nothing_is_scaled() -> None:
    svc = make_service("svc", replicas=1, min_replicas=0)
    s = snap(services=(svc,), pods=(gpu_pod("a", node="n2"),), metrics=IDLE_GPUS)
    [alert], after = decide(s)
    assert isinstance(alert, actions.Alert) and alert.subject == "node/n2"
    assert "no dcgm-exporter GPU utilization" in alert.reason
    assert decide(s, after)[0] == []


def test_stale_metrics_and_shared_nodes_are_not_judged() -> None:
    svc = make_service("svc", replicas=1, min_replicas=0)
    old = {k: flat(0.0, end=NOW - 3600) for k in IDLE_GPUS}
    assert decide(snap(services=(svc,), pods=(gpu_pod("a"),), metrics=old))[0] == []
    other = make_service("other", replicas=1, min_replicas=0)
    shared = (gpu_pod("a"), gpu_pod("x", service="ml/other"))
    assert decide(snap(services=(svc, other), pods=shared, metrics=IDLE_GPUS))[0] == []


def test_a_pod_with_a_mig_profile_kopilot_cannot_price_is_not_judged_and_nothing_raises() -> None:
    svc = make_service("svc", replicas=1, min_replicas=0)
    odd = cluster.Pod(
        name="a",
        namespace="ml",
        request=resources.Resources(mig={"1g.10gb+me": 1}),
        node="n1",
        phase=cluster.PodPhase.RUNNING,
        service="ml/svc",
    )
    assert decide(snap(services=(svc,), pods=(odd,), metrics=IDLE_GPUS))[0] == []


def test_gpu_streams_whose_index_is_not_a_number_are_ignored() -> None:
    svc = make_service("svc", replicas=1, min_replicas=0)
    odd = {**IDLE_GPUS, "gpu/n1/\u00b2/utilization": flat(0.9), "gpu/n1/x/utilization": flat(0.9)}
    [action], _ = decide(snap(services=(svc,), pods=(gpu_pod("a"),), metrics=odd))
    assert isinstance(action, actions.Scale) and action.replicas == 0
