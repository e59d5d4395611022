"""The kopilot Helm chart lints, renders, is accepted by a real API server, and grants least privilege.

`helm template` renders deploy/helm/kopilot; every object is created on the test control plane
with strict field validation (an unknown or misplaced field is an error, not a warning); kwok then
runs the controller's pod. SubjectAccessReviews ask the real RBAC authoriser what the chart's
ServiceAccount may and may not do.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic

from kopilot.governance import policyfile
from kopilot.kube import controlplane

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "kopilot"
RELEASE = "kopilot"
KUBE_VERSION = controlplane.read_versions(
    CHART.parents[2] / "hack" / "controlplane" / "versions.env"
)["K8S_VERSION"]


def render(helm: Path, namespace: str, *values: str) -> list[dict[str, Any]]:
    argv = [str(helm), "template", RELEASE, str(CHART), "--namespace", namespace]
    argv += ["--kube-version", KUBE_VERSION]  # helm's own default (1.20) is below the chart's
    for value in values:
        argv += ["--set", value]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_chart_lints(helm: Path) -> None:
    result = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_policy_is_a_valid_governance_policy(helm: Path) -> None:
    (configmap,) = by_kind(render(helm, "kopilot-system"), "ConfigMap")
    policy = policyfile.parse(configmap["data"]["policy.yaml"], "chart values.policy")
    assert policy.rails.dry_run is True  # the chart proposes actions until a person opts in


def verbs(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(resource, verb) over every ClusterRole of the release."""
    return {
        (r, v)
        for role in by_kind(docs, "ClusterRole")
        for rule in role["rules"]
        for r in rule.get("resources") or rule.get("nonResourceURLs") or []
        for v in rule["verbs"]
    }


def test_metrics_are_served_on_the_pod_address_behind_auth_by_default(helm: Path) -> None:
    def args(*values: str) -> list[str]:
        (deployment,) = by_kind(render(helm, "ns", *values), "Deployment")
        return list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])

    default = args()
    assert "--metrics-host=0.0.0.0" in default  # kopilot run alone binds loopback
    assert "--metrics-auth" in default
    opened = args("metrics.auth=false")
    assert "--no-metrics-auth" in opened and "--metrics-auth" not in opened
    readers = [
        r
        for r in by_kind(render(helm, "ns"), "ClusterRole")
        if r["metadata"]["name"] == f"{RELEASE}-metrics-reader"
    ]
    assert [r["rules"] for r in readers] == [[{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]]
    bound = {b["roleRef"]["name"] for b in by_kind(render(helm, "ns"), "ClusterRoleBinding")}
    assert f"{RELEASE}-metrics-reader" not in bound  # users bind it to their Prometheus


def test_rbac_switches_remove_their_rules(helm: Path) -> None:
    default = verbs(render(helm, "ns"))
    assert ("pods/binding", "create") not in default  # placing pods is off by default
    assert ("pods/eviction", "create") in default
    assert ("deployments/scale", "patch") in default
    assert ("deployments", "patch") not in default  # the scale subresource only
    assert ("statefulsets", "patch") not in default
    assert ("nodes", "patch") in default
    assert ("deployments", "patch") in verbs(render(helm, "ns", "rbac.annotateWorkloads=true"))
    narrowed = verbs(
        render(
            helm,
            "ns",
            "rbac.allowScale=false",
            "rbac.allowCordon=false",
            "rbac.allowRepartition=false",
            "rbac.allowBind=true",
        )
    )
    assert ("deployments/scale", "patch") not in narrowed
    assert ("deployments", "patch") not in narrowed
    assert ("nodes", "patch") not in narrowed
    assert ("pods/binding", "create") in narrowed
    assert not by_kind(render(helm, "ns", "rbac.create=false"), "ClusterRole")


def test_a_namespaced_controller_acts_only_in_its_namespaces(helm: Path) -> None:
    docs = render(helm, "ns", "namespaces={ml,vision}")
    assert ("nodes", "patch") not in verbs(docs)  # nodes belong to the whole cluster
    bindings = by_kind(docs, "RoleBinding")
    acting = [b for b in bindings if b["roleRef"]["name"].endswith("-act")]
    assert sorted(b["metadata"]["namespace"] for b in acting) == ["ml", "vision"]
    bound = {b["roleRef"]["name"] for b in by_kind(docs, "ClusterRoleBinding")}
    assert bound == {"kopilot"}  # only the read-only role holds cluster-wide


@pytest.fixture
def installed(
    helm: Path, api_client: client.ApiClient
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with install(helm, api_client) as release:
        yield release


@contextlib.contextmanager
def install(
    helm: Path, api_client: client.ApiClient, *values: str, managed: Sequence[str] = ()
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The chart's objects created in a fresh namespace (and the `managed` namespaces, which are
    created first); all of them removed afterwards."""
    namespace = f"kopilot-{uuid.uuid4().hex[:6]}"
    docs = render(helm, namespace, f"fullnameOverride=kopilot-{namespace}", *values)
    core = client.CoreV1Api(api_client)
    for name in (namespace, *managed):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # The audit log's claim binds to this volume (the test cluster has no provisioner).
    (claim,) = by_kind(docs, "PersistentVolumeClaim")
    volume = core.create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=f"{namespace}-state"),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": claim["spec"]["resources"]["requests"]["storage"]},
                access_modes=claim["spec"]["accessModes"],
                host_path=client.V1HostPathVolumeSource(path=f"/var/lib/{namespace}"),
                claim_ref=client.V1ObjectReference(
                    namespace=namespace, name=claim["metadata"]["name"]
                ),
                persistent_volume_reclaim_policy="Retain",
            ),
        )
    )
    api = dynamic.DynamicClient(api_client)
    created: list[tuple[Any, dict[str, Any]]] = []
    try:
        for doc in docs:
            resource = api.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            resource.create(
                body=doc,
                namespace=doc["metadata"].get("namespace", namespace)
                if resource.namespaced
                else None,
                query_params=[("fieldValidation", "Strict")],
            )
            created.append((resource, doc))
        yield namespace, docs
    finally:
        for resource, doc in created:
            if not resource.namespaced:
                resource.delete(name=doc["metadata"]["name"])
        for name in (namespace, *managed):
            core.delete_namespace(name)
        core.delete_persistent_volume(volume.metadata.name)


def can(api_client: client.ApiClient, user: str, namespace: str | None, **attributes: str) -> bool:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=["system:serviceaccounts", "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(namespace=namespace, **attributes),
        )
    )
    answer = client.AuthorizationV1Api(api_client).create_subject_access_review(review)
    return bool(answer.status.allowed)


def test_chart_installs_and_its_pod_runs_under_kwok(
    api_client: client.ApiClient, installed: tuple[str, list[dict[str, Any]]]
) -> None:
    namespace, _ = installed
    core = client.CoreV1Api(api_client)
    # A node for the controller's pod (kwok plays its kubelet).
    node = f"cpu-{namespace}"
    capacity = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    core.create_node(
        client.V1Node(
            metadata=client.V1ObjectMeta(name=node, annotations={"kwok.x-k8s.io/node": "fake"}),
            status=client.V1NodeStatus(capacity=capacity, allocatable=capacity),
        )
    )
    try:
        deadline = time.monotonic() + 180
        pods: list[client.V1Pod] = []
        while time.monotonic() < deadline:
            pods = core.list_namespaced_pod(
                namespace, label_selector="app.kubernetes.io/name=kopilot"
            ).items
            if pods and all(p.status.phase == "Running" for p in pods):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"controller pod not Running: {[p.status.phase for p in pods]}")
        (pod,) = pods
        assert pod.spec.service_account_name == f"kopilot-{namespace}"
        assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
        (state,) = [v for v in pod.spec.volumes if v.name == "state"]
        claim = core.read_namespaced_persistent_volume_claim(
            state.persistent_volume_claim.claim_name, namespace
        )
        assert claim.status.phase == "Bound"  # the audit log outlives the pod
    finally:
        core.delete_node(node)


def test_chart_rbac_is_least_privilege(
    api_client: client.ApiClient, installed: tuple[str, list[dict[str, Any]]]
) -> None:
    namespace, _ = installed
    sa = f"system:serviceaccount:{namespace}:kopilot-{namespace}"
    scale = {"group": "apps", "resource": "deployments", "subresource": "scale"}
    lease = {"group": "coordination.k8s.io", "resource": "leases"}
    allowed = [
        (None, {"verb": "watch", "resource": "nodes"}),
        ("ml", {"verb": "list", "resource": "pods"}),
        ("ml", {"verb": "patch", **scale}),
        (
            "ml",
            {"verb": "patch", "group": "apps", "resource": "statefulsets", "subresource": "scale"},
        ),
        ("ml", {"verb": "create", "resource": "pods", "subresource": "eviction"}),
        (None, {"verb": "patch", "resource": "nodes"}),
        ("ml", {"verb": "create", "resource": "events"}),
        ("ml", {"verb": "watch", "group": "kopilot.io", "resource": "modelservices"}),
        (
            "ml",
            {
                "verb": "patch",
                "group": "kopilot.io",
                "resource": "modelservices",
                "subresource": "status",
            },
        ),
        (namespace, {"verb": "create", **lease}),
        (namespace, {"verb": "update", "name": "kopilot", **lease}),
        (None, {"verb": "create", "group": "authentication.k8s.io", "resource": "tokenreviews"}),
        (
            None,
            {"verb": "create", "group": "authorization.k8s.io", "resource": "subjectaccessreviews"},
        ),
    ]
    denied = [
        ("ml", {"verb": "get", "resource": "secrets"}),
        ("ml", {"verb": "delete", "resource": "pods"}),
        ("ml", {"verb": "create", "resource": "pods", "subresource": "binding"}),  # off by default
        (None, {"verb": "delete", "resource": "nodes"}),
        ("ml", {"verb": "update", **scale}),
        ("ml", {"verb": "patch", "group": "apps", "resource": "deployments"}),  # its pod template
        ("ml", {"verb": "patch", "group": "apps", "resource": "statefulsets"}),
        ("ml", {"verb": "delete", "group": "apps", "resource": "deployments"}),
        ("ml", {"verb": "patch", "group": "kopilot.io", "resource": "modelservices"}),  # spec
        (namespace, {"verb": "update", "name": "someone-elses", **lease}),
        ("ml", {"verb": "update", "name": "kopilot", **lease}),
        (
            None,
            {"verb": "create", "group": "rbac.authorization.k8s.io", "resource": "clusterroles"},
        ),
    ]
    assert [a for ns, a in allowed if not can(api_client, sa, ns, **a)] == []
    assert [a for ns, a in denied if can(api_client, sa, ns, **a)] == []


def test_kopilot_acts_with_only_the_charts_service_account(
    helm: Path,
    api_client: client.ApiClient,
    control_plane: controlplane.ControlPlane,
    installed: tuple[str, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    """The chart's own command line, run for one acting cycle with the chart's ServiceAccount's
    token: everything `kopilot run` needs is granted (a 403 would fail the cycle's action)."""
    namespace, docs = installed
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    ml = f"ml-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ml)))
    try:
        # Wants 2 replicas (min-replicas) but has 1: kopilot's reactive rule scales it.
        annotations = {
            "kopilot.io/managed": "true",
            "kopilot.io/capacity-rps": "10",
            "kopilot.io/min-replicas": "2",
        }
        labels = {"app": "detector"}
        container = client.V1Container(name="model", image="registry.invalid/detector:test")
        apps.create_namespaced_deployment(
            ml,
            client.V1Deployment(
                metadata=client.V1ObjectMeta(name="detector", annotations=annotations),
                spec=client.V1DeploymentSpec(
                    replicas=1,
                    selector=client.V1LabelSelector(match_labels=labels),
                    template=client.V1PodTemplateSpec(
                        metadata=client.V1ObjectMeta(labels=labels),
                        spec=client.V1PodSpec(containers=[container]),
                    ),
                ),
            ),
        )
        account = f"kopilot-{namespace}"
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        )
        token = core.create_namespaced_service_account_token(account, namespace, request)
        kubeconfig = yaml.safe_load(control_plane.kubeconfig.read_text())
        kubeconfig["users"][0]["user"] = {"token": token.status.token}
        (tmp_path / "sa.kubeconfig").write_text(yaml.safe_dump(kubeconfig))
        (configmap,) = by_kind(docs, "ConfigMap")
        (tmp_path / "policy.yaml").write_text(configmap["data"]["policy.yaml"])

        (deployment,) = by_kind(render(helm, namespace, f"namespaces={{{ml}}}"), "Deployment")
        local = {  # the pod's paths and port, moved onto this machine
            "/etc/kopilot/policy.yaml": str(tmp_path / "policy.yaml"),
            "/var/lib/kopilot/audit.jsonl": str(tmp_path / "audit.jsonl"),
            "--metrics-port=9102": "--metrics-port=-1",
            "$(POD_NAME)": "chart-test",
        }

        def moved(arg: str) -> str:
            for pod_value, here in local.items():
                arg = arg.replace(pod_value, here)
            return arg

        args = [moved(a) for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]]
        assert f"--namespace={ml}" in args and "--leader-elect" in args
        argv = [sys.executable, "-m", "kopilot.cli", *args, "--once", "--no-dry-run"]
        argv.append(f"--kubeconfig={tmp_path / 'sa.kubeconfig'}")
        run = subprocess.run(
            argv,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "200", "KUBECONFIG": os.devnull},
        )
        output = run.stdout + run.stderr
        assert run.returncode == 0, output
        assert "failed" not in output.lower(), output
        scaled = apps.read_namespaced_deployment("detector", ml)
        assert scaled.spec.replicas == 2, output
        # The chart grants the scale subresource only: the trail is the workload's Event.
        assert "kopilot.io/last-action" not in (scaled.metadata.annotations or {})
        events = core.list_namespaced_event(ml, field_selector="reason=KopilotScaled").items
        assert [e.involved_object.name for e in events] == ["detector"]
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease("kopilot", namespace)
        assert lease.metadata.name == "kopilot"
    finally:
        core.delete_namespace(ml)


def test_a_namespaced_controller_is_allowed_to_act_only_there(
    helm: Path, api_client: client.ApiClient
) -> None:
    ml, other = f"ml-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    with install(helm, api_client, f"namespaces={{{ml}}}", managed=[ml, other]) as (namespace, _):
        sa = f"system:serviceaccount:{namespace}:kopilot-{namespace}"
        scale = {"group": "apps", "resource": "deployments", "subresource": "scale"}
        eviction = {"resource": "pods", "subresource": "eviction"}
        allowed = [
            (ml, {"verb": "patch", **scale}),
            (ml, {"verb": "create", **eviction}),
            (ml, {"verb": "create", "resource": "events"}),
            (other, {"verb": "list", "resource": "pods"}),  # it still sees the whole cluster
            (None, {"verb": "watch", "resource": "nodes"}),
        ]
        denied = [
            (other, {"verb": "patch", **scale}),
            (other, {"verb": "create", **eviction}),
            (None, {"verb": "patch", "resource": "nodes"}),  # cordon is the whole cluster's
        ]
        assert [a for ns, a in allowed if not can(api_client, sa, ns, **a)] == []
        assert [a for ns, a in denied if can(api_client, sa, ns, **a)] == []
