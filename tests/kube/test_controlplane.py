"""The test control plane places GPU and MIG workloads like a real cluster would.

Fake GPU nodes (kwok) advertise `nvidia.com/gpu` or MIG resources; Deployments ask for them; the
real kube-scheduler places the pods, counting extended resources, and kwok runs them. Each test
makes its own nodes (by a label of its own) and namespace, and removes them.
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client

from tests.kube import live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

T = TypeVar("T")
GPU = "nvidia.com/gpu"
MIG_1G = "nvidia.com/mig-1g.10gb"


def make_node(name: str, *, group: str, extended: dict[str, str]) -> client.V1Node:
    """A node kwok manages (it sets it Ready), with the given extended resources."""
    capacity = {"cpu": "96", "memory": "1Ti", "pods": "110", **extended}
    return client.V1Node(
        metadata=client.V1ObjectMeta(
            name=name,
            labels={"kopilot.test/group": group, "type": "kwok", "nvidia.com/gpu.present": "true"},
            annotations={"kwok.x-k8s.io/node": "fake"},
        ),
        status=client.V1NodeStatus(capacity=capacity, allocatable=capacity),
    )


def make_deployment(name: str, *, replicas: int, group: str, limits: dict[str, str]) -> Any:
    labels = {"app": name}
    container = client.V1Container(
        name="model",
        image="registry.invalid/kopilot/detector:test",  # kwok never pulls it
        resources=client.V1ResourceRequirements(limits=limits, requests=limits),
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[container],
                    node_selector={"kopilot.test/group": group},
                ),
            ),
        ),
    )


wait_for = functools.partial(live.wait_for, timeout=180.0)
"""Scheduling 100 pods on a shared machine can take minutes: a longer default wait."""


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def node_group(api_client: client.ApiClient) -> Iterator[str]:
    """A label value for this test's nodes; every node carrying it is deleted afterwards."""
    core = client.CoreV1Api(api_client)
    group = uuid.uuid4().hex[:8]
    yield group
    core.delete_collection_node(label_selector=f"kopilot.test/group={group}")


def is_running(pod: client.V1Pod) -> bool:
    ready = [c for c in pod.status.conditions or [] if c.type == "Ready"]
    return pod.status.phase == "Running" and bool(ready) and ready[0].status == "True"


def unschedulable_message(pod: client.V1Pod) -> str | None:
    for condition in pod.status.conditions or []:
        if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
            return str(condition.message)
    return None


def test_kube_scheduler_fills_100_kwok_gpu_nodes_and_no_more(
    api_client: client.ApiClient, namespace: str, node_group: str
) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    nodes = [f"gpu-{node_group}-{i:03d}" for i in range(100)]
    for name in nodes:
        core.create_node(make_node(name, group=node_group, extended={GPU: "8"}))
    wait_for(
        "100 kwok GPU nodes to be Ready",
        lambda: (
            True
            if sum(
                any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
                for n in core.list_node(label_selector=f"kopilot.test/group={node_group}").items
            )
            == 100
            else None
        ),
    )
    node = core.read_node(nodes[0])
    assert node.status.allocatable[GPU] == "8"

    # 110 pods of 8 GPUs each on 100 nodes of 8 GPUs: exactly 100 fit, one per node.
    apps.create_namespaced_deployment(
        namespace, make_deployment("trainer", replicas=110, group=node_group, limits={GPU: "8"})
    )

    def settled() -> tuple[list[client.V1Pod], list[client.V1Pod]] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=trainer").items
        running = [p for p in pods if is_running(p)]
        pending = [p for p in pods if unschedulable_message(p) is not None]
        return (running, pending) if len(running) == 100 and len(pending) == 10 else None

    running, pending = wait_for("100 Running and 10 unschedulable trainer pods", settled)
    per_node = Counter(p.spec.node_name for p in running)
    assert set(per_node) == set(nodes)
    assert set(per_node.values()) == {1}
    assert all(p.status.pod_ip for p in running)  # kwok gave each running pod an address
    for pod in pending:
        assert pod.spec.node_name is None
        assert f"Insufficient {GPU}" in (unschedulable_message(pod) or "")


def test_mig_slices_are_counted_as_extended_resources(
    api_client: client.ApiClient, namespace: str, node_group: str
) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    # Two A100s partitioned into seven 1g.10gb slices each: room for 14 one-slice pods.
    for i in range(2):
        core.create_node(
            make_node(f"mig-{node_group}-{i}", group=node_group, extended={MIG_1G: "7"})
        )
    apps.create_namespaced_deployment(
        namespace, make_deployment("detector", replicas=15, group=node_group, limits={MIG_1G: "1"})
    )

    def settled() -> tuple[list[client.V1Pod], list[client.V1Pod]] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=detector").items
        running = [p for p in pods if is_running(p)]
        pending = [p for p in pods if unschedulable_message(p) is not None]
        return (running, pending) if len(running) == 14 and len(pending) == 1 else None

    running, pending = wait_for("14 Running detector pods and 1 unschedulable", settled)
    assert Counter(p.spec.node_name for p in running) == {
        f"mig-{node_group}-0": 7,
        f"mig-{node_group}-1": 7,
    }
    assert f"Insufficient {MIG_1G}" in (unschedulable_message(pending[0]) or "")
