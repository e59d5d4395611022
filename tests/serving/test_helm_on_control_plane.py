"""The model-service chart on a real API server: every rendered object is created with strict
field validation, the real kube-scheduler places the pod on a (kwok) node that has the MIG slice
it asks for, past that node's GPU taint, and kwok runs it.

Uses the test control plane of tests/kube (scripts/setup.d/50-controlplane.sh builds it).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic

from tests.kube.conftest import api_client, control_plane, helm, kubeconfig  # noqa: F401
from tests.serving.test_helm_chart import CHART

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
MIG = "nvidia.com/mig-1g.10gb"


@pytest.fixture
def gpu_node(api_client: client.ApiClient) -> Iterator[str]:  # noqa: F811
    """A kwok node with two 1g.10gb MIG slices and the usual NoSchedule taint for them."""
    core = client.CoreV1Api(api_client)
    name = f"mig-{uuid.uuid4().hex[:8]}"
    capacity = {"cpu": "32", "memory": "128Gi", "pods": "110", MIG: "2"}
    core.create_node(
        client.V1Node(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={"kopilot.test/node": name},
                annotations={"kwok.x-k8s.io/node": "fake"},
            ),
            spec=client.V1NodeSpec(taints=[client.V1Taint(key=MIG, effect="NoSchedule")]),
            status=client.V1NodeStatus(capacity=capacity, allocatable=capacity),
        )
    )
    try:
        yield name
    finally:
        core.delete_node(name)


def test_the_chart_deploys_a_mig_model_service(
    helm: Any,  # noqa: F811
    api_client: client.ApiClient,  # noqa: F811
    gpu_node: str,
) -> None:
    namespace = f"ms-{uuid.uuid4().hex[:6]}"
    argv = [str(helm), "template", "detector", str(CHART), "--namespace", namespace]
    for value in (
        f"gpu.resource={MIG}",
        "gpu.count=1",
        f"nodeSelector.kopilot\\.test/node={gpu_node}",
    ):
        argv += ["--set", value]
    docs = [
        d
        for d in yaml.safe_load_all(
            subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        )
        if d
    ]
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    api = dynamic.DynamicClient(api_client)
    try:
        for doc in docs:
            resource = api.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            resource.create(
                body=doc, namespace=namespace, query_params=[("fieldValidation", "Strict")]
            )
        deployment = client.AppsV1Api(api_client).read_namespaced_deployment(
            "detector-model-service", namespace
        )
        assert deployment.metadata.annotations["kopilot.io/managed"] == "true"
        assert deployment.spec.replicas == 1  # left to the API default; kopilot scales it
        deadline = time.monotonic() + 180
        pods: list[client.V1Pod] = []
        while time.monotonic() < deadline:
            pods = core.list_namespaced_pod(
                namespace, label_selector="app.kubernetes.io/instance=detector"
            ).items
            if pods and all(p.status.phase == "Running" for p in pods):
                break
            time.sleep(0.5)
        else:
            states = [
                (p.status.phase, [c.message for c in p.status.conditions or []]) for p in pods
            ]
            pytest.fail(f"model-service pod not Running: {states}")
        (pod,) = pods
        assert pod.spec.node_name == gpu_node
        limits = pod.spec.containers[0].resources.limits
        assert limits[MIG] == "1"
        probe = pod.spec.containers[0].readiness_probe.http_get
        assert (probe.path, probe.port) == ("/readyz", "http")
    finally:
        core.delete_namespace(namespace)
