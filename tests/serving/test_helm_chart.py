"""The model-service Helm chart (deploy/helm/model-service): what it renders, and that the server
it describes really starts with the chart's arguments and answers the chart's probes.

helm comes from the control-plane build (scripts/setup.d/50-controlplane.sh builds it from the Go
module proxy into $KOPILOT_CACHE) or from PATH; without it the tests skip locally and fail in CI.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any

import httpx
import pytest
import yaml

from kopilot.kube import controlplane
from tests.serving import servers

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "model-service"


def find_helm() -> str | None:
    """$HELM, else the pinned helm built beside the test control plane, else helm on PATH."""
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    cache = pathlib.Path(
        os.environ.get("KOPILOT_CACHE", pathlib.Path.home() / ".cache" / "kopilot")
    )
    versions = REPO / "hack" / "controlplane" / "versions.env"
    built = controlplane.pinned_binaries(cache=cache, versions_file=versions).path("helm")
    return str(built) if built.is_file() else shutil.which("helm")


@pytest.fixture(scope="module")
def helm() -> str:
    found = find_helm()
    if found is None:
        message = "helm not found: run scripts/setup.d/50-controlplane.sh (or put helm on PATH)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def render(helm: str, *overrides: str) -> dict[str, dict[str, Any]]:
    """`helm template` -> {kind: manifest}."""
    command = [helm, "template", "demo", str(CHART)]
    for override in overrides:
        command += ["--set", override]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {doc["kind"]: doc for doc in yaml.safe_load_all(out) if doc}


def container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_the_chart_lints(helm: str) -> None:
    result = subprocess.run(
        [helm, "lint", "--strict", str(CHART)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_defaults_ask_for_a_gpu_and_carry_kopilot_annotations(helm: str) -> None:
    manifests = render(helm)
    assert set(manifests) == {
        "Deployment",
        "Service",
        "ServiceAccount",
        "NetworkPolicy",
        "PodDisruptionBudget",
    }
    deployment = manifests["Deployment"]
    annotations = deployment["metadata"]["annotations"]
    assert annotations["kopilot.io/managed"] == "true"
    for key in ("capacity-rps", "cold-start-seconds", "min-replicas", "max-replicas"):
        assert annotations[f"kopilot.io/{key}"].isdigit(), key
    query = annotations["kopilot.io/demand-query"]
    assert (
        query
        == 'sum(rate(kopilot_serving_requests_total{namespace="default", service="demo-model-service"}[1m]))'
    )
    assert "replicas" not in deployment["spec"]  # kopilot owns the replica count
    c = container(manifests)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
    tolerations = deployment["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["args"][0] == "serve" and "--host=0.0.0.0" in c["args"]
    service = manifests["Service"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    pod_annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations["prometheus.io/path"] == "/metrics"


def test_a_mig_slice_instead_of_a_whole_gpu(helm: str) -> None:
    manifests = render(helm, "gpu.resource=nvidia.com/mig-1g.10gb", "gpu.count=2")
    limits = container(manifests)["resources"]["limits"]
    assert limits["nvidia.com/mig-1g.10gb"] == 2 and "nvidia.com/gpu" not in limits
    assert container(manifests)["resources"]["limits"]["memory"] == "2Gi"  # user limits kept


def test_cpu_only_asks_for_no_accelerator(helm: str) -> None:
    manifests = render(helm, "gpu.count=0")
    resources = container(manifests)["resources"]
    assert not any("nvidia.com" in key for part in resources.values() for key in part)
    assert "tolerations" not in manifests["Deployment"]["spec"]["template"]["spec"]


def test_service_monitor_and_unmanaged_replicas(helm: str) -> None:
    manifests = render(
        helm, "metrics.serviceMonitor.enabled=true", "kopilot.managed=false", "replicaCount=3"
    )
    monitor = manifests["ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0] == {
        "port": "http",
        "path": "/metrics",
        "interval": "15s",
    }
    assert manifests["Deployment"]["spec"]["replicas"] == 3
    assert manifests["Deployment"]["metadata"]["annotations"]["kopilot.io/managed"] == "false"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["kopilot.minReplicas=5", "kopilot.maxReplicas=2"],
            r"kopilot\.minReplicas \(5\) must not exceed kopilot\.maxReplicas \(2\)",
        ),
        (["gpu.count=-1"], r"gpu[./]count\W.*(greater than or equal to 0|minimum: got -1, want 0)"),
        (["model.path=model.onnx"], r"model[./]path\W.*(?i:does not match pattern)"),
        (
            ["server.maxBatchSize=0"],
            r"server[./]maxBatchSize\W.*(greater than or equal to 1|minimum: got 0, want 1)",
        ),
        (
            ["terminationGracePeriodSeconds=10"],
            r"must be at least gracefulTimeoutSeconds \+ preStopSleepSeconds \(35\)",
        ),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(
    helm: str, overrides: list[str], message: str
) -> None:
    command = [helm, "template", "demo", str(CHART)]
    for override in overrides:
        command += ["--set", override]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    assert result.returncode != 0
    assert re.search(message, result.stderr), (
        result.stderr
    )  # helm versions word schema errors apart


@pytest.mark.integration
def test_the_rendered_container_serves_and_answers_its_probes(
    helm: str, tiny_classic: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """Run the Deployment's container arguments as they are (model path and listen address
    swapped for this machine: tests bind loopback only) and probe it as the kubelet would."""
    manifests = render(helm, "gpu.count=0")
    c = container(manifests)
    port = servers.free_port()
    for arg in c["args"]:
        if arg.startswith("--port="):
            assert int(arg.split("=", 1)[1]) == c["ports"][0]["containerPort"]
    swapped = {"--model": str(tiny_classic), "--host": "127.0.0.1", "--port": str(port)}
    args = [
        f"{arg.split('=', 1)[0]}={swapped[arg.split('=', 1)[0]]}"
        if arg.split("=", 1)[0] in swapped
        else arg
        for arg in c["args"]
    ]
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from kopilot.cli import main; main()", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        servers.wait_ready(
            url, alive=lambda: process.poll() is None, path=c["readinessProbe"]["httpGet"]["path"]
        )
        assert httpx.get(url + c["livenessProbe"]["httpGet"]["path"]).status_code == 200
        assert httpx.get(url + "/metrics").status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
        log.close()
