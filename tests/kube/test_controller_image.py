"""The controller image runs `kopilot run` with the Helm chart's own arguments against the test
control plane: one acting cycle from inside the image (buildah run, chroot isolation, the host's
loopback), as the image's user. Skips locally without buildah or current images, fails under
CI=true (tests/deploy/images.py).
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from kopilot.kube import controlplane
from tests.deploy.images import (  # noqa: F401 (fixtures)
    BUILDAH,
    CONTROLLER,
    built_fixture,
    containers_fixture,
    entrypoint,
)
from tests.kube.test_helm_chart import by_kind, render

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_the_controller_image_runs_a_cycle_against_the_cluster(
    containers: dict[str, str],
    helm: Path,
    control_plane: controlplane.ControlPlane,
    api_client: client.ApiClient,
    tmp_path: Path,
) -> None:
    """The chart's own `kopilot run` arguments, run from the controller image as its user
    against the test control plane (on 127.0.0.1): one acting cycle scales a managed workload."""
    image = CONTROLLER
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    ml = f"ml-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ml)))
    try:
        labels = {"app": "detector"}
        apps.create_namespaced_deployment(
            ml,
            client.V1Deployment(
                metadata=client.V1ObjectMeta(
                    name="detector",
                    annotations={
                        "kopilot.io/managed": "true",
                        "kopilot.io/capacity-rps": "10",
                        "kopilot.io/min-replicas": "2",
                    },
                ),
                spec=client.V1DeploymentSpec(
                    replicas=1,
                    selector=client.V1LabelSelector(match_labels=labels),
                    template=client.V1PodTemplateSpec(
                        metadata=client.V1ObjectMeta(labels=labels),
                        spec=client.V1PodSpec(
                            containers=[client.V1Container(name="m", image="registry.invalid/m")]
                        ),
                    ),
                ),
            ),
        )
        docs = render(
            helm, "kopilot-system", f"namespaces={{{ml}}}", "leaderElection.enabled=false"
        )
        (configmap,) = by_kind(docs, "ConfigMap")
        (deployment,) = by_kind(docs, "Deployment")
        work = tmp_path / "work"
        work.mkdir(mode=0o777)
        work.chmod(0o777)  # the image's user writes the audit log here
        (work / "policy.yaml").write_text(configmap["data"]["policy.yaml"])
        config = yaml.safe_load(control_plane.kubeconfig.read_text())
        for cluster in config["clusters"]:
            ca = Path(cluster["cluster"].pop("certificate-authority")).read_bytes()
            cluster["cluster"]["certificate-authority-data"] = base64.b64encode(ca).decode()
        (work / "kubeconfig").write_text(yaml.safe_dump(config))
        args = [
            a.replace("/etc/kopilot", "/work").replace("/var/lib/kopilot", "/work")
            for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        ]
        args = [a for a in args if not a.startswith("--metrics-port=")]
        argv = [*BUILDAH, "run", "--isolation", "chroot", "--volume", f"{work}:/work"]
        argv += [containers[image], "--", *entrypoint(image), *args]
        argv += ["--metrics-port=-1", "--once", "--no-dry-run", "--kubeconfig=/work/kubeconfig"]
        cycle = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=180)
        output = cycle.stdout + cycle.stderr
        assert cycle.returncode == 0, output
        assert apps.read_namespaced_deployment("detector", ml).spec.replicas == 2, output
        assert (work / "audit.jsonl").stat().st_uid == 65532  # written as the image's user
    finally:
        core.delete_namespace(ml)
