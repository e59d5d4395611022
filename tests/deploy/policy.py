"""The checks a platform team runs on a chart before installing it, over `helm template` output.

kube-linter (golang.stackrox.io/kube-linter) is not installable here (the Go module proxy answers
403 for it), so its default checks that apply to these charts are written out below under kube-linter's
own names, plus Kubescape's controls for what kube-linter does not look at (seccomp, service-account
tokens, network policies) under their control ids, and three checks from issue #17 (`workload-write`,
`node-write-when-namespaced`, `metrics-without-auth`). Each check is a function from the rendered objects to findings
(data); deploy/helm/policy-exceptions.yaml lists the accepted ones, each with its reason.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Doc = Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    check: str
    object: str  # Kind/name
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Exception_:
    check: str
    chart: str
    object: str  # Kind/name, fnmatch pattern
    reason: str
    variant: str = "*"

    def covers(self, chart: str, variant: str, finding: Finding) -> bool:
        return (
            self.check == finding.check
            and self.chart == chart
            and fnmatch.fnmatchcase(variant, self.variant)
            and fnmatch.fnmatchcase(finding.object, self.object)
        )


Check = Callable[[list[Doc]], Iterator[Finding]]
CHECKS: dict[str, Check] = {}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def check(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def run(docs: list[Doc]) -> list[Finding]:
    return [finding for fn in CHECKS.values() for finding in fn(docs)]


# -- helpers ---------------------------------------------------------------------------------
def ref(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def workloads(docs: list[Doc]) -> Iterator[Doc]:
    return (d for d in docs if d["kind"] in WORKLOAD_KINDS)


def pod_spec(workload: Doc) -> Mapping[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def pod_labels(workload: Doc) -> Mapping[str, str]:
    return dict(workload["spec"]["template"]["metadata"].get("labels") or {})


def containers(workload: Doc) -> Iterator[tuple[str, Mapping[str, Any]]]:
    spec = pod_spec(workload)
    for c in [*(spec.get("initContainers") or []), *spec["containers"]]:
        yield f"{ref(workload)} container {c['name']}", c


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions In/NotIn/Exists) against labels."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def security(workload: Doc, container: Mapping[str, Any], field: str) -> Any:
    """A security setting, the container's own over the pod's."""
    own = (container.get("securityContext") or {}).get(field)
    return own if own is not None else (pod_spec(workload).get("securityContext") or {}).get(field)


# -- containers (kube-linter) ----------------------------------------------------------------
@check("run-as-non-root")
def _run_as_non_root(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        for where, c in containers(w):
            if security(w, c, "runAsNonRoot") is not True or security(w, c, "runAsUser") == 0:
                yield Finding(check="run-as-non-root", object=ref(w), detail=where)


@check("no-read-only-root-fs")
def _read_only_root(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        for where, c in containers(w):
            if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
                yield Finding(check="no-read-only-root-fs", object=ref(w), detail=where)


@check("privilege-escalation-container")
def _escalation(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        for where, c in containers(w):
            ctx = c.get("securityContext") or {}
            if ctx.get("allowPrivilegeEscalation") is not False or ctx.get("privileged"):
                yield Finding(check="privilege-escalation-container", object=ref(w), detail=where)


@check("drop-net-raw-capability")
def _capabilities(docs: list[Doc]) -> Iterator[Finding]:
    """kube-linter asks for NET_RAW to be dropped; this asks for ALL (Kubescape C-0046)."""
    for w in workloads(docs):
        for where, c in containers(w):
            caps = (c.get("securityContext") or {}).get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []) or caps.get("add"):
                yield Finding(check="drop-net-raw-capability", object=ref(w), detail=where)


@check("latest-tag")
def _latest_tag(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        for where, c in containers(w):
            image = c["image"]
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            if tag in ("", "latest") and "@sha256:" not in image:
                yield Finding(check="latest-tag", object=ref(w), detail=f"{where}: {image}")


def _unset(docs: list[Doc], resource: str) -> Iterator[Finding]:
    """kube-linter's unset-<resource>-requirements: a container without requests or limits of it."""
    for w in workloads(docs):
        for where, c in containers(w):
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                if resource not in (res.get(part) or {}):
                    yield Finding(
                        check=f"unset-{resource}-requirements",
                        object=ref(w),
                        detail=f"{where}: no {part}.{resource}",
                    )


@check("unset-cpu-requirements")
def _cpu(docs: list[Doc]) -> Iterator[Finding]:
    yield from _unset(docs, "cpu")


@check("unset-memory-requirements")
def _memory(docs: list[Doc]) -> Iterator[Finding]:
    yield from _unset(docs, "memory")


@check("no-liveness-probe")
def _liveness(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        for c in pod_spec(w)["containers"]:
            if not c.get("livenessProbe"):
                yield Finding(check="no-liveness-probe", object=ref(w), detail=c["name"])


@check("no-readiness-probe")
def _readiness(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        for c in pod_spec(w)["containers"]:
            if not c.get("readinessProbe"):
                yield Finding(check="no-readiness-probe", object=ref(w), detail=c["name"])


@check("liveness-port")
def _probe_ports(docs: list[Doc]) -> Iterator[Finding]:
    """kube-linter's liveness-port and readiness-port: a named probe port the container has."""
    for w in workloads(docs):
        for c in pod_spec(w)["containers"]:
            names = {p.get("name") for p in c.get("ports") or []}
            numbers = {p["containerPort"] for p in c.get("ports") or []}
            for kind in ("livenessProbe", "readinessProbe"):
                port = ((c.get(kind) or {}).get("httpGet") or {}).get("port")
                if port is not None and port not in names | numbers:
                    yield Finding(
                        check="liveness-port", object=ref(w), detail=f"{kind} port {port}"
                    )


@check("probe-timeout")
def _probe_timeout(docs: list[Doc]) -> Iterator[Finding]:
    """Issue #17: a 1 s probe timeout (the default) restarts a server that is only busy."""
    for w in workloads(docs):
        for c in pod_spec(w)["containers"]:
            for kind in ("livenessProbe", "readinessProbe"):
                probe = c.get(kind)
                if probe and int(probe.get("timeoutSeconds", 1)) < 2:
                    yield Finding(
                        check="probe-timeout", object=ref(w), detail=f"{c['name']} {kind}"
                    )


@check("privileged-ports")
def _privileged_ports(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        for where, c in containers(w):
            for p in c.get("ports") or []:
                if p["containerPort"] < 1024:
                    yield Finding(check="privileged-ports", object=ref(w), detail=where)


# -- pods (kube-linter, Kubescape) -----------------------------------------------------------
@check("host-namespaces")
def _host_namespaces(docs: list[Doc]) -> Iterator[Finding]:
    """kube-linter's host-network, host-pid and host-ipc."""
    for w in workloads(docs):
        spec = pod_spec(w)
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(field):
                yield Finding(check="host-namespaces", object=ref(w), detail=field)


@check("sensitive-host-mounts")
def _host_mounts(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        for volume in pod_spec(w).get("volumes") or []:
            if "hostPath" in volume:
                yield Finding(check="sensitive-host-mounts", object=ref(w), detail=volume["name"])


@check("C-0210-seccomp-runtime-default")
def _seccomp(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        for where, c in containers(w):
            profile = security(w, c, "seccompProfile") or {}
            if profile.get("type") not in ("RuntimeDefault", "Localhost"):
                yield Finding(check="C-0210-seccomp-runtime-default", object=ref(w), detail=where)


@check("C-0034-automount-service-account-token")
def _token(docs: list[Doc]) -> Iterator[Finding]:
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    for w in workloads(docs):
        spec = pod_spec(w)
        mounted = spec.get("automountServiceAccountToken")
        if mounted is None:
            account = accounts.get(spec.get("serviceAccountName", "default"), {})
            mounted = account.get("automountServiceAccountToken", True)
        if mounted is not False:
            yield Finding(
                check="C-0034-automount-service-account-token",
                object=ref(w),
                detail="token mounted",
            )


@check("default-service-account")
def _default_account(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        if pod_spec(w).get("serviceAccountName", "default") == "default":
            yield Finding(check="default-service-account", object=ref(w), detail="default")


@check("non-existent-service-account")
def _missing_account(docs: list[Doc]) -> Iterator[Finding]:
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    for w in workloads(docs):
        name = pod_spec(w).get("serviceAccountName", "default")
        if name != "default" and name not in accounts:
            yield Finding(check="non-existent-service-account", object=ref(w), detail=name)


@check("mismatching-selector")
def _selector(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        if w["kind"] not in ("Job", "CronJob") and not selects(
            w["spec"].get("selector"), pod_labels(w)
        ):
            yield Finding(check="mismatching-selector", object=ref(w), detail="")


@check("no-anti-affinity")
def _anti_affinity(docs: list[Doc]) -> Iterator[Finding]:
    for w in workloads(docs):
        replicated = w["kind"] == "Deployment" and int(w["spec"].get("replicas", 1)) > 1
        if replicated and not (pod_spec(w).get("affinity") or {}).get("podAntiAffinity"):
            yield Finding(check="no-anti-affinity", object=ref(w), detail="")


# -- what selects what (kube-linter's dangling-* checks, Kubescape C-0260) --------------------
def _selecting(docs: list[Doc], kind: str, selector_of: Callable[[Doc], Any]) -> Iterator[Finding]:
    """Objects of `kind` whose selector matches no workload's pods (dangling)."""
    for d in docs:
        if d["kind"] == kind and not any(
            selects(selector_of(d), pod_labels(w)) for w in workloads(docs)
        ):
            yield Finding(check=f"dangling-{kind.lower()}", object=ref(d), detail="selects no pod")


@check("dangling-service")
def _dangling_service(docs: list[Doc]) -> Iterator[Finding]:
    yield from _selecting(docs, "Service", lambda d: {"matchLabels": d["spec"].get("selector")})


@check("dangling-networkpolicy")
def _dangling_policy(docs: list[Doc]) -> Iterator[Finding]:
    yield from _selecting(docs, "NetworkPolicy", lambda d: d["spec"]["podSelector"])


@check("dangling-poddisruptionbudget")
def _dangling_pdb(docs: list[Doc]) -> Iterator[Finding]:
    yield from _selecting(docs, "PodDisruptionBudget", lambda d: d["spec"]["selector"])


@check("C-0260-missing-network-policy")
def _network_policy(docs: list[Doc]) -> Iterator[Finding]:
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    for w in workloads(docs):
        if not any(selects(p["spec"]["podSelector"], pod_labels(w)) for p in policies):
            yield Finding(check="C-0260-missing-network-policy", object=ref(w), detail="")


@check("missing-pod-disruption-budget")
def _pdb(docs: list[Doc]) -> Iterator[Finding]:
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for w in workloads(docs):
        covered = any(selects(b["spec"]["selector"], pod_labels(w)) for b in budgets)
        if w["kind"] in ("Deployment", "StatefulSet") and not covered:
            yield Finding(check="missing-pod-disruption-budget", object=ref(w), detail="")


@check("pdb-max-unavailable")
def _pdb_blocks(docs: list[Doc]) -> Iterator[Finding]:
    """kube-linter's pdb-max-unavailable and pdb-min-available: a budget that blocks every drain."""
    for d in docs:
        if d["kind"] == "PodDisruptionBudget":
            spec = d["spec"]
            if str(spec.get("maxUnavailable", "1")) in ("0", "0%") or "minAvailable" in spec:
                yield Finding(check="pdb-max-unavailable", object=ref(d), detail=str(spec))


# -- RBAC (kube-linter, issue #17) ------------------------------------------------------------
def _rules(docs: list[Doc]) -> Iterator[tuple[Doc, Mapping[str, Any]]]:
    for d in docs:
        if d["kind"] in ("ClusterRole", "Role"):
            for rule in d.get("rules") or []:
                yield d, rule


@check("wildcard-in-rules")
def _wildcards(docs: list[Doc]) -> Iterator[Finding]:
    for role, rule in _rules(docs):
        fields = ("apiGroups", "resources", "verbs")
        if any("*" in (rule.get(f) or []) for f in fields):
            yield Finding(check="wildcard-in-rules", object=ref(role), detail=str(rule))


@check("access-to-secrets")
def _secrets(docs: list[Doc]) -> Iterator[Finding]:
    for role, rule in _rules(docs):
        if "secrets" in (rule.get("resources") or []):
            yield Finding(check="access-to-secrets", object=ref(role), detail=str(rule))


@check("access-to-create-pods")
def _create_pods(docs: list[Doc]) -> Iterator[Finding]:
    for role, rule in _rules(docs):
        if "pods" in (rule.get("resources") or []) and {"create", "*"} & set(rule["verbs"]):
            yield Finding(check="access-to-create-pods", object=ref(role), detail=str(rule))


@check("cluster-admin-role-binding")
def _cluster_admin(docs: list[Doc]) -> Iterator[Finding]:
    for d in docs:
        if (
            d["kind"] in ("ClusterRoleBinding", "RoleBinding")
            and d["roleRef"]["name"] == "cluster-admin"
        ):
            yield Finding(check="cluster-admin-role-binding", object=ref(d), detail="")


@check("workload-write")
def _workload_write(docs: list[Doc]) -> Iterator[Finding]:
    """Writing a Deployment or StatefulSet itself (not its scale subresource) can change its pod
    template: image, command, service account. An autoscaler needs the subresource only."""
    workload_resources = {"deployments", "statefulsets", "daemonsets", "replicasets"}
    for role, rule in _rules(docs):
        writes = {"create", "update", "patch", "*"} & set(rule["verbs"])
        if writes and workload_resources & set(rule.get("resources") or []):
            yield Finding(check="workload-write", object=ref(role), detail=str(rule))


@check("node-write-when-namespaced")
def _node_write(docs: list[Doc]) -> Iterator[Finding]:
    """A controller limited to some namespaces (a `--namespace=` argument) must not write to
    nodes, which belong to the whole cluster."""
    limited = any(
        str(arg).startswith("--namespace=")
        for w in workloads(docs)
        for _, c in containers(w)
        for arg in c.get("args") or []
    )
    if not limited:
        return
    cluster_bound = {d["roleRef"]["name"] for d in docs if d["kind"] == "ClusterRoleBinding"}
    for role, rule in _rules(docs):
        bound = role["kind"] == "ClusterRole" and role["metadata"]["name"] in cluster_bound
        writes = {"patch", "update", "*"} & set(rule["verbs"])
        if bound and writes and "nodes" in (rule.get("resources") or []):
            yield Finding(check="node-write-when-namespaced", object=ref(role), detail=str(rule))


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@check("metrics-without-auth")
def _metrics_without_auth(docs: list[Doc]) -> Iterator[Finding]:
    """`kopilot run` serving /metrics beyond loopback without `--metrics-auth` (the last of
    `--metrics-auth`/`--no-metrics-auth` wins): anyone who reaches the port reads the metrics."""
    for w in workloads(docs):
        for _, c in containers(w):
            args = [str(a) for a in c.get("args") or []]
            if not args or args[0] != "run":
                continue
            flags = dict(a.removeprefix("--").split("=", 1) for a in args if "=" in a)
            switches = [a for a in args if a in ("--metrics-auth", "--no-metrics-auth")]
            served = flags.get("metrics-port", "9102") != "-1"
            exposed = flags.get("metrics-host", "127.0.0.1") not in LOOPBACK
            if served and exposed and switches[-1:] != ["--metrics-auth"]:
                yield Finding(
                    check="metrics-without-auth",
                    object=ref(w),
                    detail=f"--metrics-host={flags.get('metrics-host')} without --metrics-auth",
                )
