"""deploy/kube-scheduler/kopilot-scheduler.yaml is accepted by a real API server (server-side
dry run of every object) and embeds the same extender settings as kube-scheduler-config.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kopilot.kube import controlplane
from tests.kube import live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy/kube-scheduler"
PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
}


def _objects() -> list[dict[str, Any]]:
    with (DEPLOY / "kopilot-scheduler.yaml").open() as f:
        return [o for o in yaml.safe_load_all(f) if o]


def test_the_embedded_scheduler_config_matches_the_documented_one() -> None:
    (cm,) = [o for o in _objects() if o["kind"] == "ConfigMap"]
    embedded = yaml.safe_load(cm["data"]["kube-scheduler-config.yaml"])
    documented = yaml.safe_load((DEPLOY / "kube-scheduler-config.yaml").read_text())
    assert embedded["extenders"] == documented["extenders"]
    assert embedded["profiles"] == documented["profiles"]
    (deployment,) = [o for o in _objects() if o["kind"] == "Deployment"]
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    args = containers["extender"]["args"]
    port = args[args.index("--port") + 1]
    assert embedded["extenders"][0]["urlPrefix"] == f"http://127.0.0.1:{port}"


def test_every_object_passes_a_server_side_dry_run(
    control_plane: controlplane.ControlPlane, api_client: object
) -> None:
    api = live.make_api(api_client)  # type: ignore[arg-type]
    objects = _objects()
    assert {o["kind"] for o in objects} == set(PATHS)
    for obj in objects:
        path = PATHS[obj["kind"]].format(ns=obj["metadata"].get("namespace", ""))
        created = api.call(
            "POST", path, f"dry-run create {obj['kind']}", query={"dryRun": "All"}, body=obj
        )
        assert created["metadata"]["name"] == obj["metadata"]["name"]
