"""Builders for test objects: small, readable, with sensible defaults."""

from __future__ import annotations

from kopilot.model import actions, cluster, series


def make_service(
    name: str = "svc",
    namespace: str = "ml",
    *,
    replicas: int = 4,
    ready: int | None = None,
    capacity_rps: float = 10.0,
    cold_start_s: float = 60.0,
    min_replicas: int = 0,
    max_replicas: int = 50,
) -> cluster.ModelService:
    return cluster.ModelService(
        name=name,
        namespace=namespace,
        replicas=replicas,
        ready_replicas=replicas if ready is None else ready,
        capacity_rps=capacity_rps,
        cold_start_s=cold_start_s,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
    )


def make_node(name: str, *, gpus: int = 8, unschedulable: bool = False) -> cluster.Node:
    return cluster.Node(
        name=name,
        cpu_milli=96000,
        memory_mib=393216,
        gpus=tuple(cluster.Gpu(index=i, model="A100-80GB") for i in range(gpus)),
        unschedulable=unschedulable,
    )


def snapshot(
    *services: cluster.ModelService,
    nodes: tuple[cluster.Node, ...] = (),
    demand: dict[str, series.Series] | None = None,
    time: float = 0.0,
) -> cluster.ClusterSnapshot:
    return cluster.ClusterSnapshot(time=time, services=services, nodes=nodes, demand=demand or {})


def scale(service: str, replicas: int, current: int = 4) -> actions.Scale:
    return actions.Scale(service=service, replicas=replicas, current=current, reason="test")
