"""Raw Kubernetes JSON becomes kopilot.model objects: quantities, nodes, pods, managed services."""

from __future__ import annotations

from typing import Any

import pytest

from kopilot.kube import converting, notes, objects, quantities
from kopilot.model import cluster, errors


@pytest.mark.parametrize(
    ("text", "milli"),
    [("2", 2000), ("500m", 500), ("0.25", 250), ("1.5", 1500), ("100u", 1), ("1e3", 1_000_000)],
)
def test_cpu_quantities(text: str, milli: int) -> None:
    assert quantities.cpu_milli(text) == milli


@pytest.mark.parametrize(
    ("text", "mib"),
    [("1Gi", 1024), ("512Mi", 512), ("1Ti", 1024 * 1024), ("1G", 954), ("1048576", 1), ("1", 1)],
)
def test_memory_quantities(text: str, mib: int) -> None:
    assert quantities.memory_mib(text) == mib


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "5 Gi", "--1"])
def test_bad_quantity_names_where(text: str) -> None:
    with pytest.raises(errors.InvalidInputError, match="node n1 cpu"):
        quantities.cpu_milli(text, "node n1 cpu")


def test_fractional_device_count_is_refused() -> None:
    with pytest.raises(errors.InvalidInputError, match="whole number"):
        quantities.count("1.5", "nvidia.com/gpu")


def make_node(name: str, *, gpus: int = 0, ready: str = "True", **extra: Any) -> objects.Node:
    alloc = {"cpu": "96", "memory": "1Ti", "pods": "110"}
    if gpus:
        alloc["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {
            "name": name,
            "labels": {"nvidia.com/gpu.product": "A100-80GB"} if gpus else {},
        },
        "spec": {"unschedulable": bool(extra.get("unschedulable"))},
        "status": {
            "allocatable": alloc,
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": ready},
            ],
        },
    }


def make_pod(
    name: str, *, node: str | None = None, gpus: int = 0, phase: str = "Running", **meta: Any
) -> objects.Pod:
    requests = {"cpu": "500m", "memory": "1Gi"}
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    pod: objects.Pod = {
        "metadata": {"name": name, "namespace": "ml", **meta},
        "spec": {
            "containers": [
                {"name": "model", "resources": {"requests": requests, "limits": limits}},
                {"name": "sidecar", "resources": {"requests": {"cpu": "100m"}}},
            ],
            "initContainers": [{"name": "warm", "resources": {"requests": {"cpu": "2"}}}],
        },
        "status": {"phase": phase},
    }
    if node:
        pod["spec"]["nodeName"] = node
    return pod


def test_node_readiness_capacity_and_gpus() -> None:
    info = converting.node_info(make_node("n1", gpus=8, ready="False", unschedulable=True))
    assert info.name == "n1"
    assert info.cpu_milli == 96_000
    assert info.memory_mib == 1024 * 1024
    assert info.gpu_count == 8
    assert info.gpu_model == "A100-80GB"
    assert info.ready is False
    assert info.unschedulable is True
    assert converting.node_info(make_node("n2")).ready is True
    missing: objects.Node = {"metadata": {"name": "n3"}, "status": {"allocatable": {"cpu": "1"}}}
    assert converting.node_info(missing).ready is False  # no Ready condition: not ready


def test_pod_request_counts_the_largest_init_container_and_limits_only_resources() -> None:
    pod = converting.pod_of(make_pod("p1", node="n1", gpus=2))
    # containers: 500m + 100m = 600m; the init container asks 2 cores: the scheduler counts 2000m
    assert pod.request.cpu_milli == 2000
    assert pod.request.memory_mib == 1024
    assert pod.request.gpus == 2  # given only as a limit: requests default to limits
    assert pod.node == "n1"
    assert pod.phase is cluster.PodPhase.RUNNING
    assert pod.key == "ml/p1"


def test_pod_memory_limit_is_the_sum_of_its_containers_limits_or_none() -> None:
    raw = make_pod("p1")
    assert converting.pod_of(raw).memory_limit_mib == 0.0  # the sidecar has no limit
    raw["spec"]["containers"][0]["resources"]["limits"] = {"memory": "1536Mi"}
    raw["spec"]["containers"][1]["resources"]["limits"] = {"memory": "512Mi"}
    assert converting.pod_of(raw).memory_limit_mib == 2048.0
    raw["spec"]["containers"][1]["resources"]["limits"] = {"memory": "lots"}
    with pytest.raises(errors.InvalidInputError, match="sidecar memory"):
        converting.pod_of(raw)


def test_pod_service_through_replicaset_and_statefulset_owners() -> None:
    deployed = make_pod(
        "web-7d9f8c-abcde",
        labels={"pod-template-hash": "7d9f8c"},
        ownerReferences=[{"kind": "ReplicaSet", "name": "web-7d9f8c", "controller": True}],
    )
    assert converting.pod_of(deployed).service == "ml/web"
    stateful = make_pod(
        "db-0", ownerReferences=[{"kind": "StatefulSet", "name": "db", "controller": True}]
    )
    assert converting.pod_of(stateful).service == "ml/db"
    assert converting.pod_of(make_pod("bare")).service is None


def test_unknown_phase_reads_as_pending() -> None:
    assert converting.pod_of(make_pod("p", phase="Unknown")).phase is cluster.PodPhase.PENDING


def test_gpu_usage_fills_whole_gpus_and_honours_recorded_indices() -> None:
    info = converting.node_info(make_node("n1", gpus=4))
    pods = [
        converting.pod_of(make_pod("a", node="n1", gpus=2)),
        converting.pod_of(
            make_pod("b", node="n1", gpus=1, annotations={cluster.ANNOTATION_GPU_INDICES: "3"})
        ),
        converting.pod_of(make_pod("done", node="n1", gpus=1, phase="Succeeded")),
    ]
    [node] = converting.with_gpu_usage([info], pods)
    assert [g.used_milli for g in node.gpus] == [1000, 1000, 0, 1000]
    assert all(g.model == "A100-80GB" for g in node.gpus)


def workload(annotations: dict[str, str], *, kind: str = "Deployment") -> objects.Workload:
    return {
        "kind": kind,
        "metadata": {"name": "detector", "namespace": "ml", "annotations": annotations},
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [{"name": "m", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]
                }
            },
        },
        "status": {"readyReplicas": 2},
    }


def test_managed_workload_becomes_a_model_service() -> None:
    raw = workload(
        {
            notes.MANAGED: "true",
            notes.CAPACITY_RPS: "12.5",
            notes.COLD_START_S: "90",
            notes.MIN_REPLICAS: "1",
            notes.MAX_REPLICAS: "8",
            notes.DEMAND_QUERY: 'sum(rate(requests_total{app="detector"}[1m]))',
        },
        kind="StatefulSet",
    )
    ref = converting.workload_ref(raw)
    assert ref is not None
    assert ref.kind == "StatefulSet"
    assert ref.settings.demand_query == 'sum(rate(requests_total{app="detector"}[1m]))'
    svc = converting.service_of(raw, ref)
    assert (svc.key, svc.replicas, svc.ready_replicas) == ("ml/detector", 3, 2)
    assert (svc.capacity_rps, svc.cold_start_s) == (12.5, 90.0)
    assert (svc.min_replicas, svc.max_replicas) == (1, 8)
    assert svc.request.gpus == 1


def test_unmanaged_workload_is_ignored() -> None:
    assert converting.workload_ref(workload({notes.CAPACITY_RPS: "3"})) is None
    assert converting.workload_ref(workload({notes.MANAGED: "false"})) is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "capacity-rps is missing"),
        ({notes.CAPACITY_RPS: "fast"}, "capacity-rps must be a number"),
        ({notes.CAPACITY_RPS: "0"}, "capacity-rps must be > 0"),
        ({notes.CAPACITY_RPS: "nan"}, "must be finite"),
        ({notes.CAPACITY_RPS: "5", notes.MIN_REPLICAS: "2.5"}, "min-replicas must be a whole"),
        ({notes.CAPACITY_RPS: "5", notes.MIN_REPLICAS: "4", notes.MAX_REPLICAS: "2"}, "below"),
        ({notes.CAPACITY_RPS: "5", notes.COLD_START_S: "-1"}, "cold-start-seconds must be >= 0"),
    ],
)
def test_bad_annotations_name_the_workload_and_the_annotation(
    extra: dict[str, str], message: str
) -> None:
    with pytest.raises(notes.AnnotationError, match=message) as info:
        converting.workload_ref(workload({notes.MANAGED: "true", **extra}))
    assert "Deployment ml/detector" in str(info.value)
    assert isinstance(info.value, errors.PermanentError)


def test_times_round_trip() -> None:
    t = 1_700_000_000.123456
    assert converting.timestamp(converting.rfc3339(t, micro=True)) == pytest.approx(t, abs=1e-6)
    assert converting.timestamp("2023-11-14T22:13:20Z") == 1_700_000_000.0
