"""Both charts pass the policy check a platform team runs (tests/deploy/policy.py: kube-linter's
checks and Kubescape's controls over `helm template` output), with every accepted finding written
down in deploy/helm/policy-exceptions.yaml; and each check does catch what it looks for.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import policy

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "deploy" / "helm"
EXCEPTIONS = CHARTS / "policy-exceptions.yaml"
KUBE_VERSION = "1.34.4"

# (chart, variant, --set values): the defaults, and the values that switch templates' branches.
VARIANTS: list[tuple[str, str, list[str]]] = [
    ("kopilot", "default", []),
    ("kopilot", "namespaced", ["namespaces={ml,vision}"]),
    ("kopilot", "annotated", ["rbac.annotateWorkloads=true", "rbac.allowBind=true"]),
    ("kopilot", "shared-log", ["replicaCount=2", "auditLog.existingClaim=kopilot-audit"]),
    ("kopilot", "open-metrics", ["metrics.auth=false"]),
    ("model-service", "default", []),
    ("model-service", "cpu-only", ["gpu.count=0"]),
    (
        "model-service",
        "unmanaged",
        ["kopilot.managed=false", "metrics.serviceMonitor.enabled=true"],
    ),
]


def render(helm: Path, chart: str, values: list[str]) -> list[policy.Doc]:
    argv = [str(helm), "template", "rel", str(CHARTS / chart), "--namespace", "ops"]
    argv += ["--kube-version", KUBE_VERSION]
    for value in values:
        argv += ["--set", value]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def exceptions() -> list[policy.Exception_]:
    return [policy.Exception_(**entry) for entry in yaml.safe_load(EXCEPTIONS.read_text())]


def test_charts_pass_the_policy_check_with_written_exceptions(helm: Path) -> None:
    accepted = exceptions()
    assert all(e.reason.strip() for e in accepted)
    unexplained: list[tuple[str, str, policy.Finding]] = []
    used: set[policy.Exception_] = set()
    for chart, variant, values in VARIANTS:
        for finding in policy.run(render(helm, chart, values)):
            covering = [e for e in accepted if e.covers(chart, variant, finding)]
            used.update(covering)
            if not covering:
                unexplained.append((chart, variant, finding))
    assert unexplained == []
    assert [e for e in accepted if e not in used] == [], "stale exceptions"


def test_a_replicated_controller_needs_a_shared_audit_log(helm: Path) -> None:
    argv = [str(helm), "template", "rel", str(CHARTS / "kopilot"), "--set", "replicaCount=2"]
    argv += ["--kube-version", KUBE_VERSION]
    result = subprocess.run(argv, check=False, capture_output=True, text=True)
    assert result.returncode != 0
    assert "replicaCount > 1 needs a ReadWriteMany audit-log claim" in result.stderr


# -- each check catches what it looks for (no helm needed) ------------------------------------
def good() -> list[dict[str, Any]]:
    """A small release that passes every check: the shape both charts render."""

    def labels() -> dict[str, str]:
        return {"app": "x"}

    container = {
        "name": "x",
        "image": "kopilot-controller:0.1.0",
        "ports": [{"name": "http", "containerPort": 8080}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "timeoutSeconds": 5},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "timeoutSeconds": 3},
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod = {
        "serviceAccountName": "x",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    return [
        {"kind": "ServiceAccount", "metadata": {"name": "x"}},
        {
            "kind": "Deployment",
            "metadata": {"name": "x"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels()},
                "template": {"metadata": {"labels": labels()}, "spec": pod},
            },
        },
        {"kind": "Service", "metadata": {"name": "x"}, "spec": {"selector": labels()}},
        {
            "kind": "NetworkPolicy",
            "metadata": {"name": "x"},
            "spec": {"podSelector": {"matchLabels": labels()}},
        },
        {
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "x"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels()}},
        },
        {
            "kind": "ClusterRole",
            "metadata": {"name": "x"},
            "rules": [
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
                {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
            ],
        },
        {
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "x"},
            "roleRef": {"kind": "ClusterRole", "name": "x"},
        },
    ]


Edit = Callable[[list[dict[str, Any]]], None]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return docs[1]["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return docs[1]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return docs[5]["rules"]  # type: ignore[no-any-return]


BREAKS: list[tuple[str, Edit]] = [
    ("run-as-non-root", lambda d: pod(d)["securityContext"].update(runAsUser=0)),
    (
        "no-read-only-root-fs",
        lambda d: container(d)["securityContext"].pop("readOnlyRootFilesystem"),
    ),
    (
        "privilege-escalation-container",
        lambda d: container(d)["securityContext"].update(allowPrivilegeEscalation=True),
    ),
    (
        "drop-net-raw-capability",
        lambda d: container(d)["securityContext"]["capabilities"].update(add=["NET_RAW"]),
    ),
    ("latest-tag", lambda d: container(d).update(image="kopilot-controller")),
    ("unset-cpu-requirements", lambda d: container(d)["resources"]["limits"].pop("cpu")),
    ("unset-memory-requirements", lambda d: container(d)["resources"]["requests"].pop("memory")),
    ("no-liveness-probe", lambda d: container(d).pop("livenessProbe")),
    ("no-readiness-probe", lambda d: container(d).pop("readinessProbe")),
    ("liveness-port", lambda d: container(d)["livenessProbe"]["httpGet"].update(port="metrics")),
    ("probe-timeout", lambda d: container(d)["livenessProbe"].pop("timeoutSeconds")),
    ("privileged-ports", lambda d: container(d)["ports"][0].update(containerPort=80)),
    ("host-namespaces", lambda d: pod(d).update(hostNetwork=True)),
    (
        "sensitive-host-mounts",
        lambda d: pod(d)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    ),
    ("C-0210-seccomp-runtime-default", lambda d: pod(d)["securityContext"].pop("seccompProfile")),
    (
        "C-0034-automount-service-account-token",
        lambda d: pod(d).pop("automountServiceAccountToken"),
    ),
    ("default-service-account", lambda d: pod(d).pop("serviceAccountName")),
    ("non-existent-service-account", lambda d: pod(d).update(serviceAccountName="y")),
    ("mismatching-selector", lambda d: d[1]["spec"]["selector"]["matchLabels"].update(app="y")),
    ("no-anti-affinity", lambda d: d[1]["spec"].update(replicas=3)),
    ("dangling-service", lambda d: d[2]["spec"].update(selector={"app": "y"})),
    (
        "dangling-networkpolicy",
        lambda d: d[3]["spec"]["podSelector"]["matchLabels"].update(app="y"),
    ),
    ("C-0260-missing-network-policy", lambda d: d.pop(3)),
    (
        "dangling-poddisruptionbudget",
        lambda d: d[4]["spec"]["selector"]["matchLabels"].update(app="y"),
    ),
    ("missing-pod-disruption-budget", lambda d: d.pop(4)),
    ("pdb-max-unavailable", lambda d: d[4]["spec"].update(maxUnavailable=0)),
    ("wildcard-in-rules", lambda d: rules(d)[0].update(verbs=["*"])),
    ("access-to-secrets", lambda d: rules(d)[0].update(resources=["secrets"])),
    (
        "access-to-create-pods",
        lambda d: rules(d).append({"resources": ["pods"], "verbs": ["create"]}),
    ),
    ("cluster-admin-role-binding", lambda d: d[6]["roleRef"].update(name="cluster-admin")),
    ("workload-write", lambda d: rules(d)[1].update(resources=["deployments"])),
    (
        "node-write-when-namespaced",
        lambda d: (
            rules(d).append({"resources": ["nodes"], "verbs": ["patch"]}),
            container(d).update(args=["run", "--namespace=ml"]),
        ),
    ),
    ("metrics-without-auth", lambda d: container(d).update(args=["run", "--metrics-host=::"])),
    (
        "metrics-without-auth",
        lambda d: container(d).update(
            args=["run", "--metrics-host=0.0.0.0", "--metrics-auth", "--no-metrics-auth"]
        ),
    ),
]


def test_the_good_release_passes() -> None:
    assert policy.run(good()) == []


def test_every_check_has_a_case_that_breaks_it() -> None:
    assert {name for name, _ in BREAKS} == set(policy.CHECKS)


@pytest.mark.parametrize(("name", "edit"), BREAKS, ids=[name for name, _ in BREAKS])
def test_each_check_catches_what_it_looks_for(name: str, edit: Edit) -> None:
    docs = copy.deepcopy(good())
    edit(docs)
    assert name in {f.check for f in policy.run(docs)}
